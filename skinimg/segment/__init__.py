"""Skin segmentation: a small U-Net trained on real labelled photographs, run by OpenCV's DNN module.

``model`` (default)
    A fully convolutional network of the U-Net family (Ronneberger, Fischer and Brox 2015, *U-Net: convolutional
    networks for biomedical image segmentation*, MICCAI, DOI 10.1007/978-3-319-24574-4_28) trained in PyTorch on
    real labelled photos (faces and bodies of every skin tone) with optical augmentation, stored as ONNX in
    ``models/skin_unet.onnx`` (provenance in ``models/skin_unet.json``) and run by ``cv2.dnn`` (no PyTorch at run
    time; :class:`SkinNet`).  Steps (parameters in :class:`SegmentParams`):

    1. Working copy: the photo reduced by area averaging so that its long side is at most ``work_side`` pixels
       (2 x 2 steps first, OpenCV's fastest path); smaller photos are used as they are.
    2. The network on the working copy (padded by reflection to multiples of 32): one log-odds of skin per pixel.
    3. Back to the photo along its edges: the log-odds, clipped to +-4, are upsampled bilinearly to a copy of the
       photo whose long side is at most ``guide_side`` (the photo itself when smaller) and filtered with a guided
       filter (He, Sun and Tang 2013, *Guided image filtering*, IEEE TPAMI 35(6):1397-1409,
       DOI 10.1109/TPAMI.2012.213) whose guide is that copy's grey level, so the decision boundary follows the
       photo's edges; then bilinear to full resolution and thresholded at ``logit(threshold)``.
    4. ``check=True``: the network also sees the mirror image; the intersection over union of the two masks at
       working resolution is :attr:`SegmentResult.agreement`, and below :data:`AGREEMENT_MIN` the mask is flagged.
    5. Optional region of interest (``roi``): everything outside it is removed.

    What counts as skin: lesions (papules, pustules, scars, pigmented spots, moles, vitiligo), shaded and specular
    skin are skin; lips, eyes, eyebrows, nostrils' shadow, hair, beard, clothing, jewellery, charts and background
    are not.  Training data, augmentation and measured accuracy: ``docs/segmentation.md``.

``rules``
    The explicit YCrCb box of Chai and Ngan (1999), *Face segmentation using skin-color map in videophone
    applications*, IEEE TCSVT 9(4):551-564, DOI 10.1109/76.767122: skin when ``133 <= Cr <= 173`` and
    ``77 <= Cb <= 127`` (ITU-R BT.601 YCrCb of 8-bit sRGB, offsets 128), on a copy downscaled to at most
    ``work_pixels`` pixels (block means), then Gaussian smoothing, hysteresis (Canny 1986,
    DOI 10.1109/TPAMI.1986.4767851), opening and closing, small components removed and small holes filled,
    specular and very dark pixels removed.  A baseline for comparison.

A photo without any skin pixel left gets ``status="no_skin"`` (not an exception).

Modules: ``params`` (:class:`SegmentParams`, :class:`SegmentResult`, the choice lists), ``model`` (the network and
its loading, the YCrCb rule), ``filters`` (hysteresis, morphology, resampling, the guided filter), ``skin``
(:func:`segment_skin`), ``metrics`` (mask agreement).  Segmenting files is :func:`skinimg.batch.segment_paths`;
evaluating on labelled folders :func:`skinimg.batch.evaluate_folders`; training :func:`skinimg.train.train_segmenter`.
"""

from .filters import guided_filter, hysteresis_threshold
from .metrics import (TONE_GROUPS, evaluate_masks, metrics_from_counts, pooled_tone_metrics, tone_group,
                      true_skin_tone)
from .model import (DEFAULT_MODEL_PATH, MODEL_FILE, SkinNet, clear_model_cache, load_model, network_record,
                    rules_mask)
from .params import (AGREEMENT_MIN, METHODS, SECOND_STAGES, SegmentParams, SegmentResult, check_method,
                     check_second_stage)
from .skin import candidate_region, reduce_photo, segment_skin

__all__ = [
    "METHODS",
    "SECOND_STAGES",
    "AGREEMENT_MIN",
    "DEFAULT_MODEL_PATH",
    "MODEL_FILE",
    "SegmentParams",
    "SegmentResult",
    "SkinNet",
    "segment_skin",
    "candidate_region",
    "reduce_photo",
    "rules_mask",
    "hysteresis_threshold",
    "guided_filter",
    "load_model",
    "network_record",
    "clear_model_cache",
    "check_method",
    "check_second_stage",
    "evaluate_masks",
    "metrics_from_counts",
    "true_skin_tone",
    "pooled_tone_metrics",
    "tone_group",
    "TONE_GROUPS",
]
