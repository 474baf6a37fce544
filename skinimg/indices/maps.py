"""Per-pixel maps and the one-pass measurement of a photo's skin: :func:`compute_maps`, :func:`measure`."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from ..color import rgb_to_optical_density
from .basis import ChromophoreBasis, load_basis
from .chromophores import _branch_from, _candidates, _chromophores, estimate_basis_ica
from .kernels import (_crop_box, _index_values, _pad, _pooled_skin_od, _prepare, _skin_colours, _smooth_skin,
                      _unit_centroids)
from .params import INDEX_NAMES, IndexParams
from .spots import _blur_ratio, _blurred_parts, _detect_spots
from .stats import _restat, summarize_values

__all__ = ["choose_shared_branch", "skin_values", "compute_maps", "measure"]


def _resolve_basis(od_skin: np.ndarray | None, params: IndexParams) -> tuple[ChromophoreBasis, str]:
    basis = load_basis(params.basis_path)
    if params.chromophore_method == "ica":
        return estimate_basis_ica(od_skin, basis=basis, random_state=params.ica_random_state,
                                  max_samples=params.ica_max_samples, max_angle_deg=params.ica_max_angle_deg)
    return basis, "basis"


def choose_shared_branch(images: Sequence[tuple[np.ndarray, np.ndarray]], *,
                         params: IndexParams | None = None) -> str:
    """One twin branch ("light" or "dark") for several photos of the same skin.

    Where two skins share a chromaticity (brown and dark skin, see
    :func:`choose_branch`), the choice rests on brightness, which an exposure change
    moves; chosen per photo, a retake 20 % brighter can swap the branch and double or
    halve ``hemoglobin``.  The same patient's site does not jump between the twins
    (they differ by about 0.2 in melanin volume fraction), so a series is measured on
    one branch, chosen here from the skin colours of all photos pooled (each photo
    weighted by its skin pixel count, smoothed as in :func:`skin_values`).  Pass it as
    ``IndexParams(branch=...)``.

    Parameters
    ----------
    images : sequence of (rgb, mask)
        rgb: (H, W, 3) encoded sRGB uint8 / uint16 / float in [0, 1]; mask: bool (H, W).
    params : IndexParams, optional
        ``branch`` other than ``"auto"`` is returned as it is.

    Returns
    -------
    str
        ``"light"`` or ``"dark"`` (``"light"`` when there is no skin or no twin).
    """
    params = params or IndexParams()
    if params.branch != "auto":
        return params.branch
    basis = load_basis(params.basis_path)
    if basis.model is None:
        return "light"
    prepared = _pooled_skin_od(images, params)
    if not prepared:
        return "light"
    cands = [_candidates(od, basis.model) for od, _ in prepared]
    pooled = [np.concatenate([c[k] for c in cands]) for k in range(6)]
    return _branch_from(pooled, np.concatenate([od.mean(axis=1) for od, _ in prepared]),
                        np.concatenate([w for _, w in prepared]))


class _Skin:
    """Index values of the skin pixels, stored compactly.

    For 8-bit input the values are computed once per distinct colour (``weights`` =
    number of skin pixels of that colour, from a 2**24-bin histogram) and expanded
    to pixels only when a map is needed; otherwise one value per skin pixel
    (``weights`` None).  Statistics on either form are identical.
    """

    def __init__(self, rgb: np.ndarray, mask: np.ndarray, params: IndexParams, basis: ChromophoreBasis | None = None,
                 direct: bool = False, chromophores_only: bool = False):
        # clipped pixels keep their own colour, out of the average
        rgb, top, linear = _smooth_skin(rgb, mask, params, precise=True)
        self.mask = mask
        self.n = int(np.count_nonzero(mask))
        self.info = {"chromophore_method": params.chromophore_method, "chromophore_branch_check": None,
                     "saturated_fraction": float("nan")}
        self.pixel_values: dict = {}
        units, self.weights, self._pos = _skin_colours(rgb, mask)
        sat = (units >= top).any(axis=1)
        # each distinct 8-bit colour read at its pixels' mean colour before the rounding (_unit_centroids)
        colours = units if linear is None or self.weights is None else _unit_centroids(units, self.weights,
                                                                                       self._pos, linear)
        del linear
        n_sat = int(self.weights[sat].sum()) if self.weights is not None else int(np.count_nonzero(sat))
        if self.n == 0:
            self.values = {name: np.empty(0, dtype=np.float32) for name in INDEX_NAMES}
            self.spot_melanin = self.values["melanin"]
            return
        self.info["saturated_fraction"] = n_sat / self.n
        if basis is not None:
            used = "basis"
        elif params.chromophore_method == "ica":
            rng = np.random.default_rng(params.ica_random_state)
            if self.weights is not None:  # sample pixels, i.e. colours in proportion to their counts
                k = min(self.n, params.ica_max_samples)
                sub = units[np.sort(rng.choice(len(units), size=k, p=self.weights / self.n))]
            else:
                k = min(self.n, params.ica_max_samples)
                sub = units if k == self.n else units[np.sort(rng.choice(self.n, size=k, replace=False))]
            basis, used = _resolve_basis(rgb_to_optical_density(sub, params.od_floor), params)
        else:
            basis, used = _resolve_basis(None, params)
        wts = None if self.weights is None else np.where(sat, 0, self.weights)
        ch = _chromophores(colours, wts, basis, params.od_floor, params.branch, direct)
        self.info["chromophore_method"] = used if ch["branch"] is None else f"{used} ({ch['branch']} branch)"
        self.info["chromophore_branch_check"] = ch["check"]
        self.values = {} if chromophores_only else _index_values(colours, params.od_floor)
        nan = np.float32(np.nan)
        self.values["melanin"] = np.where(sat, nan, ch["melanin"])
        self.values["hemoglobin"] = np.where(sat, nan, ch["hemoglobin"])
        self.spot_melanin = np.where(sat, nan, ch["root_melanin"])
        self.chromophores = ch
        # on the dark branch the chromaticity root cannot resolve melanin, so the brightness residual carries pigment
        # as well as shading: no correction of the melanin map there (its large-scale pigment would go with the
        # shading); the corrected values still serve the brown spots, which only look at local excess
        if ch["residual"] is not None and params.shading_sigma > 0:
            corrected = self._shading_corrected(ch, sat, params)
            self.pixel_values["dark_spot_melanin" if ch["branch"] == "dark" else "melanin"] = corrected

    def _shading_corrected(self, ch: dict, sat: np.ndarray, params: IndexParams) -> np.ndarray:
        """Per-pixel melanin with the low-passed shading removed (see ``IndexParams.shading_sigma``)."""
        res = np.where(sat, np.float32(0.0), ch["residual"])  # 0 on clipped colours: field x weight of the blur
        any_sat = bool(sat.any())
        ok = ~(sat if self.weights is None else sat[self._pos]) if any_sat else None  # None: every skin pixel
        field = np.zeros(self.mask.shape, dtype=np.float32)
        field[self.mask] = res if self.weights is None else res[self._pos]
        if any_sat:
            weight = np.zeros(self.mask.shape, dtype=np.float32)
            weight[self.mask] = ok
        else:  # the same 1 on skin, 0 elsewhere, in one pass
            weight = self.mask.view(np.uint8).astype(np.float32)
        n_ok = int(np.count_nonzero(ok)) if any_sat else self.n
        sigma = params.shading_sigma * np.sqrt(max(1.0, float(n_ok)))
        parts = _blurred_parts(field, weight, sigma)  # the normalised blur, with the full-size inputs freed
        del field, weight  # before the reduced blur comes back to full size (peak memory of a 12 MP photo)
        low = _blur_ratio(*parts, self.mask.shape)[self.mask]
        level = (np.nanpercentile(low[ok] if any_sat else low, params.shading_percentile) if n_ok else 0.0)
        # shade = clip(nan_to_num(low - level), 0, None), in place; melanin - shade x slope, in place
        shade = np.subtract(low, np.float32(level), out=low)
        np.nan_to_num(shade, copy=False, nan=0.0)
        np.maximum(shade, np.float32(0.0), out=shade)
        mel = self.values["melanin"].copy() if self.weights is None else self.values["melanin"][self._pos]
        shade *= ch["slope"] if self.weights is None else ch["slope"][self._pos]
        mel -= shade
        return mel

    def pixels(self, name: str) -> np.ndarray:
        """Values of ``name`` per skin pixel (row-major mask order), float32 (N,)."""
        if name in self.pixel_values:
            return self.pixel_values[name]
        v = self.spot_melanin if name == "spot_melanin" else self.values[name]
        if self.weights is None:
            return v
        return v[self._pos]

    def map(self, name: str, box: tuple[slice, slice] | None = None, shape: tuple[int, int] | None = None) -> np.ndarray:
        """float32 map of ``name``, NaN off skin: of the crop, or of the whole frame ``shape`` that the crop is
        ``box`` of (scattered straight into the frame: no crop-size copy)."""
        return _scatter(self.pixels(name), self.mask, box, shape)

    def spot_field(self) -> np.ndarray:
        """Per-pixel melanin the brown spots are found on: the shading-free chromaticity root on the light sheet;
        on the dark sheet, where the root is ill-conditioned (it made spots of plain brown skin), the
        shading-corrected melanin."""
        return self.pixels("dark_spot_melanin" if "dark_spot_melanin" in self.pixel_values else "spot_melanin")


def skin_values(rgb: np.ndarray, mask: np.ndarray, *, params: IndexParams | None = None) -> tuple[dict, dict]:
    """All per-pixel indices on the skin pixels only, as 1-D arrays (row-major order of the mask).

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), encoded sRGB uint8 / uint16 / float in [0, 1], R, G, B
    mask : ndarray of bool, shape (H, W), True on skin
    params : IndexParams, optional

    Returns
    -------
    values : dict name -> ndarray float32, shape (N,), N = mask.sum(), for every name in INDEX_NAMES
    info : dict
        ``chromophore_method`` actually used and ``saturated_fraction`` (skin pixels
        with a channel at the maximum code, or >= 1 for float input).

    Notes
    -----
    8-bit input: every index is a function of the pixel's colour, so it is computed
    once per distinct skin colour and looked up per pixel.  Other input: per pixel,
    in chunks of 2**20 so temporaries stay small.  Integer input goes through the
    decoding / OD lookup tables of :mod:`skinimg.color`.
    """
    params = params or IndexParams()
    rgb, mask = _prepare(rgb, mask)
    box = _crop_box(mask, _pad(params))
    sk = _Skin(rgb[box], np.ascontiguousarray(mask[box]), params)
    return {name: sk.pixels(name) for name in INDEX_NAMES}, sk.info


def _scatter(values: np.ndarray, mask: np.ndarray, box: tuple[slice, slice] | None = None,
             shape: tuple[int, int] | None = None) -> np.ndarray:
    """``values`` (N,) at the True pixels of ``mask`` (h, w), NaN elsewhere, float32; with ``box`` and ``shape``
    the crop ``mask`` is ``box`` of a frame of ``shape`` and the map is of the whole frame."""
    if shape is None or tuple(shape) == mask.shape:
        m = np.full(mask.shape, np.nan, dtype=np.float32)
        m[mask] = values
        return m
    m = np.full(shape, np.nan, dtype=np.float32)
    m[box][mask] = values
    return m


def compute_maps(rgb: np.ndarray, mask: np.ndarray, *, params: IndexParams | None = None,
                 spot_map: bool = False) -> dict[str, np.ndarray]:
    """Per-pixel index maps.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), encoded sRGB uint8 [0, 255] / uint16 [0, 65535] /
        float in [0, 1]; channel order R, G, B
    mask : ndarray of bool, shape (H, W), True on skin
    params : IndexParams, optional
    spot_map : bool
        Also return ``"spot_melanin"``: the melanin field :func:`measure` finds brown spots on (shading-free on
        the light sheet), so that a comparison counts the spots ``analyze`` would.

    Returns
    -------
    dict name -> ndarray float32, shape (H, W)
        One map per name in :data:`INDEX_NAMES` (and ``spot_melanin``); ``NaN`` outside the mask.
        Units: see the module docstring.
    """
    params = params or IndexParams()
    rgb, mask = _prepare(rgb, mask)
    box = _crop_box(mask, _pad(params))
    sk = _Skin(rgb[box], np.ascontiguousarray(mask[box]), params)
    maps = {name: sk.map(name, box, mask.shape) for name in INDEX_NAMES}
    if spot_map:
        maps["spot_melanin"] = _scatter(sk.spot_field(), sk.mask, box, mask.shape)
    return maps


def measure(rgb: np.ndarray, mask: np.ndarray, *, params: IndexParams | None = None,
            return_maps: bool | Collection[str] = True) -> tuple[dict, dict | None]:
    """Statistics row (+ maps) in one pass: what ``skinimg analyze`` runs per image.

    Equivalent to ``summarize(compute_maps(rgb, mask), mask)`` but with
    ``return_maps=False`` only the melanin map is built (for the spots), which keeps
    peak memory low on large photos.  The row also has ``chromophore_method`` (the
    method actually used) and ``saturated_fraction``.  ``return_maps`` may also name the maps to build
    (a subset of :data:`INDEX_NAMES`; the row is the same).

    Returns
    -------
    row : dict
    maps : dict name -> float32 (H, W) map (NaN off skin), in :data:`INDEX_NAMES` order, or None
    """
    params = params or IndexParams()
    rgb, mask = _prepare(rgb, mask)
    box = _crop_box(mask, _pad(params))
    mc = np.ascontiguousarray(mask[box])
    sk = _Skin(rgb[box], mc, params)
    mel0 = np.zeros(mc.shape, dtype=np.float32)
    if sk.n:
        mel0[mc] = np.nan_to_num(sk.spot_field(), nan=0.0)
    row = summarize_values(sk.values, weights=sk.weights, params=params)
    if "melanin" in sk.pixel_values:
        _restat(row, "melanin", sk.pixel_values["melanin"])
    spots = _detect_spots(mel0, mc, params, mask.shape) if sk.n else None
    row["brown_spot_count"] = spots.count if spots else 0
    row["brown_spot_area_fraction"] = spots.area_fraction if spots else float("nan")
    row.update(sk.info)
    maps = None
    if return_maps:
        del mel0
        wanted = INDEX_NAMES if return_maps is True else set(return_maps)
        unknown = set(wanted) - set(INDEX_NAMES)
        if unknown:
            raise ValueError(f"unknown map name(s) {sorted(unknown)} (maps: {', '.join(INDEX_NAMES)})")
        maps = {name: sk.map(name, box, mask.shape) for name in INDEX_NAMES if name in wanted}
    return row, maps
