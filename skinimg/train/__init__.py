"""Training and benchmarking on phantoms: the only layer that imports PyTorch or uses the phantom generator as
training or scoring data.  Optional at run time: nothing in the library imports it.

Modules: ``segmenter`` (:func:`train_segmenter`: the skin network on a folder of real labelled photos),
``segdata`` (those photos: discovery, splits, label clean-up), ``augment`` (optical augmentation), ``network``
(the network's PyTorch training and ONNX export, needs ``pip install 'skinimg[train]'``; PyTorch is imported only
inside its functions), ``phantoms`` (phantom specs and per-tone metrics of the segmenter), ``ensemble`` (the
ensemble of optical models as training data: member calibration, the central model), ``basis`` (fitting
``models/chromophore_basis.json``), ``chromophore`` (its precomputed inversion tables,
``models/chromophore_tables.npz``), ``chromo_eval`` (scoring the separation on the ensemble and on a real
photograph), ``mdc`` (deriving ``models/mdc.json``), ``bench`` (``skinimg bench``).
"""

from .basis import build_chromophore_model, fit_chromophore_basis
from .phantoms import error_budget, phantom_specs, phantom_tone_metrics
from .segmenter import UCI_CANDIDATES, load_uci, score_photos, train_segmenter, uci_split

__all__ = [
    "train_segmenter",
    "score_photos",
    "load_uci",
    "uci_split",
    "UCI_CANDIDATES",
    "phantom_specs",
    "phantom_tone_metrics",
    "error_budget",
    "fit_chromophore_basis",
    "build_chromophore_model",
]
