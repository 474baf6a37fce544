"""Training and benchmarking on phantoms: the only layer that imports PyTorch or uses the phantom generator as
training or scoring data.  Optional at run time: nothing in the library imports it.

Modules: ``segmenter`` (:func:`train_segmenter`: the colour table and its second stages), ``phantoms``
(phantom specs and per-tone metrics of the segmenter), ``network`` (the U-Net's PyTorch training, needs
``pip install 'skinimg[train]'``; PyTorch is imported only inside its functions), ``ensemble`` (the
ensemble of optical models as training data: member calibration, the central model), ``basis`` (fitting
``models/chromophore_basis.json``), ``chromophore`` (its precomputed inversion tables,
``models/chromophore_tables.npz``), ``chromo_eval`` (scoring the separation on the ensemble and on a real
photograph), ``mdc`` (deriving ``models/mdc.json``), ``bench`` (``skinimg bench``).
"""

from .basis import build_chromophore_model, fit_chromophore_basis
from .phantoms import error_budget, phantom_specs, phantom_tone_metrics
from .segmenter import UCI_CANDIDATES, load_uci, train_segmenter, uci_split

__all__ = [
    "train_segmenter",
    "load_uci",
    "uci_split",
    "UCI_CANDIDATES",
    "phantom_specs",
    "phantom_tone_metrics",
    "error_budget",
    "fit_chromophore_basis",
    "build_chromophore_model",
]
