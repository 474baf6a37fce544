"""Smooth-skin photo pairs from a simple optical model independent of :mod:`skinimg.phantom.optics`.

For testing before/after comparison where feature matching fails: smooth skin (no pores, no fine
texture) of six tones on a plain backdrop, a few pigmented spots, a dark hair band, smooth shading; the
second photo with a new camera pose, exposure and a known change of blood.  The model is deliberately
*not* the spectral two-layer model the chromophore basis was fitted on, so it also shows what the indices
do on skin they were not built from (issue 26).

Optical model (per pixel, linear RGB, natural-log Beer-Lambert)::

    R_c = E * S(x, y) * r0_c * exp(-(m(x, y) a_c + b(x, y) h_c))

======================  ===================  ==========================================================
quantity                value                meaning, source
======================  ===================  ==========================================================
``r0``                  (0.85, 0.78, 0.62)   bloodless, melanin-free skin (dermal scattering, slightly
                                             yellow); light skin then renders near sRGB (227, 186, 178)
``a`` (melanin)         (1.00, 1.30, 1.60)   a lambda^-3.33 law (Jacques 1996) flattened for broad camera
                                             bands: the strict law at 610/545/465 nm gives 1 : 1.46 : 2.47,
                                             which renders dark skin orange
``h`` (haemoglobin)     (0.12, 1.00, 0.60)   blood at ~75 % saturation: strong in G (540-580 nm), moderate
                                             in B (Soret tail), weak in R (Prahl 1999)
``m``                   0.05 ... 2.0         :data:`SMOOTH_TONES`: very light (ITA ~70 degrees) to dark
                                             (ITA ~ -55 degrees) on skinimg's ITA
``b``                   0.30 ... 0.55        x (1 +- 12 %) smooth variation, one broad red patch x1.25
``S``                   0.45 ... 1           cylinder (forearm-like strip) or dome (cheek-like blob)
                                             fall-off and a +-25 % linear gradient
``E``                   0.8 ... 1.2          exposure of the shot
======================  ===================  ==========================================================

Scene: 2-6 pigmented spots (Gaussian melanin increase, sigma 3-10 px), a dark hair band (reflectance
~0.03, 6-16 px wide, not skin), a plain backdrop (:data:`SMOOTH_BACKDROPS`) with a +-20 % gradient.
Camera: Gaussian noise sigma 0.002-0.004 (linear), blur sigma 0, 0.6 or 1.2 px, sRGB, JPEG quality
85-95.  The scene is analytic in BEFORE's pixel coordinates and each photo is *rendered* (not resampled)
at its pose, so the truth is exact: :meth:`SmoothPair.render` returns ``truth``, the 3 x 3 matrix mapping
BEFORE pixels to AFTER pixels (the convention of :class:`skinimg.session.Registration`).

References: Jacques, S. L. (1996) Origins of tissue optical properties in the UVA, visible and NIR
regions. OSA TOPS 2, 364-369; Prahl, S. (1999) Optical absorption of hemoglobin,
https://omlc.org/spectra/hemoglobin/ ; IEC 61966-2-1:1999 (sRGB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..color import linear_to_srgb_uint8
from .render import _jpeg_roundtrip

__all__ = ["SMOOTH_TONES", "SMOOTH_BACKDROPS", "SMOOTH_CHANGES", "SmoothScene", "SmoothShot", "SmoothPair",
           "smooth_pose", "render_smooth", "smooth_pairs", "wrong_site_pairs", "grid_residual"]

R0 = np.array([0.85, 0.78, 0.62])
A_MEL = np.array([1.00, 1.30, 1.60])
H_HB = np.array([0.12, 1.00, 0.60])
HAIR = np.array([0.035, 0.028, 0.022])
#: Melanin of the six tones, very light to dark.
SMOOTH_TONES = {"very_light": 0.05, "light": 0.25, "intermediate": 0.5, "tan": 0.9, "brown": 1.4, "dark": 2.0}
#: Plain backdrops (linear RGB).
SMOOTH_BACKDROPS = {"grey": (0.35, 0.35, 0.35), "blue": (0.08, 0.16, 0.40), "green": (0.10, 0.28, 0.15),
                    "white": (0.75, 0.75, 0.72), "dark": (0.04, 0.04, 0.045)}
#: True blood changes (%) of the changed pairs.
SMOOTH_CHANGES = (-30.0, -25.0, -20.0, -15.0, -10.0, 10.0, 15.0, 20.0)


@dataclass(frozen=True)
class SmoothScene:
    """One piece of skin on a plain backdrop (BEFORE's pixel coordinates).

    ``site``: ``"strip"`` (forearm-like) or ``"blob"`` (cheek / abdomen-like); ``shape_seed``: the outline's seed
    (default ``seed``; the same outline with other content makes a look-alike site); ``shape_jitter``: relative
    jitter of the outline parameters; ``background``: a name of :data:`SMOOTH_BACKDROPS` or a linear RGB triple."""

    seed: int
    size: tuple = (480, 640)
    melanin: float = 0.25
    blood: float = 0.4
    site: str = "strip"
    background: str | tuple = "grey"
    shape_seed: int | None = None
    shape_jitter: float = 0.0
    spots: int = 4
    hair: bool = True


@dataclass(frozen=True)
class SmoothShot:
    """One photo of a scene: ``pose`` (dx, dy px, rotation degrees, scale, about the photo centre), exposure, blood
    scale (the true change), noise seed and sigma, blur sigma (px), JPEG quality (None: none)."""

    pose: tuple = (0.0, 0.0, 0.0, 1.0)
    exposure: float = 1.0
    blood_scale: float = 1.0
    noise_seed: int = 0
    noise: float = 0.003
    blur: float = 0.0
    jpeg: int | None = 92


def smooth_pose(pose, size) -> np.ndarray:
    """3 x 3 matrix mapping BEFORE pixel coordinates to the coordinates of a shot at ``pose`` (size (H, W))."""
    dx, dy, rot, s = pose
    h, w = size
    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    t = math.radians(rot)
    a = np.array([[s * math.cos(t), s * math.sin(t)], [-s * math.sin(t), s * math.cos(t)]])
    m = np.eye(3)
    m[:2, :2] = a
    m[:2, 2] = c + np.array([dx, dy]) - a @ c
    return m


def _sig(t):
    return 0.5 * (1.0 + np.tanh(0.5 * t))


def _waves(rng, size, amp, n=4):
    """A sum of ``n`` random low-frequency plane waves (wavelength 0.5-2 x the longer side), amplitude ``amp``."""
    waves = [(rng.uniform(0.5, 2.0) * 2 * math.pi / max(size), rng.uniform(0, math.pi), rng.uniform(0, 2 * math.pi))
             for _ in range(n)]

    def f(x, y):
        out = np.zeros(np.broadcast(x, y).shape)
        for k, th, ph in waves:
            out += np.cos(k * (x * math.cos(th) + y * math.sin(th)) + ph)
        return amp * out / n
    return f


class _Scene:
    """The analytic scene: fields at arbitrary BEFORE coordinates."""

    def __init__(self, sc: SmoothScene):
        self.sc = sc
        h, w = sc.size
        self.h, self.w = h, w
        u = min(h, w)
        rs = np.random.default_rng([sc.shape_seed if sc.shape_seed is not None else sc.seed, 1])
        rc = np.random.default_rng([sc.seed, 2])
        rj = np.random.default_rng([sc.seed, 3])

        def jit(v):
            return v * (1 + rj.uniform(-sc.shape_jitter, sc.shape_jitter)) if sc.shape_jitter else v

        if sc.site == "strip":
            self.ang = rs.uniform(-0.6, 0.6) + (math.pi / 2 if rs.random() < 0.3 else 0.0)
            self.off = rs.uniform(-0.08, 0.08) * u
            self.half = jit(rs.uniform(0.24, 0.34) * u)
            self.wob = [(jit(rs.uniform(0.02, 0.06) * u), rs.uniform(0.6, 1.6) * 2 * math.pi / max(h, w),
                         jit(rs.uniform(0, 6.3))) for _ in range(2)]
            self.taper = rs.uniform(-0.15, 0.15)
        else:
            self.cx = w / 2 + rs.uniform(-0.12, 0.12) * w
            self.cy = h / 2 + rs.uniform(-0.12, 0.12) * h
            self.r0 = jit(rs.uniform(0.36, 0.48) * u)
            self.ecc = jit(rs.uniform(1.0, 1.5))
            self.bang = jit(rs.uniform(0, math.pi))
            self.harm = [(jit(rs.uniform(0.02, 0.08)), k, jit(rs.uniform(0, 6.3))) for k in (2, 3, 4)]
        self.spots = [(rc.uniform(0.12, 0.88) * w, rc.uniform(0.12, 0.88) * h, rc.uniform(3, 10), rc.uniform(0.35, 0.9))
                      for _ in range(sc.spots)]
        self.patch = (rc.uniform(0.25, 0.75) * w, rc.uniform(0.25, 0.75) * h, rc.uniform(0.08, 0.15) * u)
        self.hair = None
        if sc.hair:
            self.hair = (rc.uniform(0.3, 0.7) * w, rc.uniform(0.3, 0.7) * h, rc.uniform(0, math.pi),
                         rc.uniform(0.18, 0.35) * u, rc.uniform(6, 16), rc.uniform(-0.004, 0.004))
        self.grad = (rc.uniform(-0.25, 0.25) / w, rc.uniform(-0.25, 0.25) / h)
        self.bg_grad = (rc.uniform(-0.2, 0.2) / w, rc.uniform(-0.2, 0.2) / h)
        self.mel_var = _waves(rc, sc.size, 0.05)  # drawn last: the stream order of the sets' definition
        self.blood_var = _waves(rc, sc.size, 0.12)

    def outline(self, x, y):
        """(signed distance-like field in px, > 0 on skin; shading in [0.45, 1])."""
        if self.sc.site == "strip":
            ca, sa = math.cos(self.ang), math.sin(self.ang)
            xc, yc = x - self.w / 2, y - self.h / 2
            along = xc * ca + yc * sa
            across = -xc * sa + yc * ca - self.off
            for a, k, ph in self.wob:
                across = across - a * np.sin(k * along + ph)
            half = self.half * (1 + self.taper * along / max(self.w, self.h))
            u = np.clip(across / half, -1, 1)
            return half - np.abs(across), 0.45 + 0.55 * np.sqrt(np.clip(1 - u * u, 0, 1)) ** 0.7
        xc, yc = x - self.cx, y - self.cy
        cb, sb = math.cos(self.bang), math.sin(self.bang)
        xr, yr = xc * cb + yc * sb, (-xc * sb + yc * cb) * self.ecc
        r = np.hypot(xr, yr)
        th = np.arctan2(yr, xr)
        rad = self.r0 * (1 + sum(a * np.cos(k * th + ph) for a, k, ph in self.harm))
        q = np.clip(r / rad, 0, 1.2)
        return rad - r, 0.5 + 0.5 * np.sqrt(np.clip(1 - 0.8 * q * q, 0, 1))

    def linear(self, x, y, blood_scale=1.0):
        """(linear RGB (H, W, 3) at exposure 1, true skin mask (H, W) bool, {"blood": b, "melanin": m} float (H, W))
        at BEFORE coordinates x, y."""
        sc = self.sc
        sd, shade = self.outline(x, y)
        alpha = _sig(sd / 0.6)
        shade = shade * (1 + self.grad[0] * (x - self.w / 2) + self.grad[1] * (y - self.h / 2))
        m = sc.melanin * (1 + self.mel_var(x, y))
        for sx, sy, sg, amp in self.spots:
            m = m + (amp + 0.4 * sc.melanin) * np.exp(-((x - sx) ** 2 + (y - sy) ** 2) / (2 * sg * sg))
        px, py, pr = self.patch
        b = sc.blood * (1 + self.blood_var(x, y)) * (1 + 0.25 * np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * pr * pr)))
        b = b * blood_scale
        skin = shade[..., None] * R0 * np.exp(-(m[..., None] * A_MEL + b[..., None] * H_HB))
        hair_a = np.zeros_like(sd)
        if self.hair is not None:
            hx, hy, ang, length, width, curv = self.hair
            ca, sa = math.cos(ang), math.sin(ang)
            along = (x - hx) * ca + (y - hy) * sa
            across = -(x - hx) * sa + (y - hy) * ca - curv * along * along
            hair_a = _sig(np.minimum(width / 2 - np.abs(across), length / 2 - np.abs(along))) * alpha
        bg = np.array(SMOOTH_BACKDROPS[sc.background] if isinstance(sc.background, str) else sc.background) * (
            1 + self.bg_grad[0] * (x - self.w / 2) + self.bg_grad[1] * (y - self.h / 2))[..., None]
        a3, h3 = alpha[..., None], hair_a[..., None]
        img = (1 - a3) * bg + a3 * ((1 - h3) * skin + h3 * shade[..., None] * HAIR)
        return img, (alpha > 0.5) & (hair_a < 0.5), {"blood": b, "melanin": m}


def render_smooth(scene: SmoothScene, shot: SmoothShot, *, maps: bool = False) -> tuple:
    """Render one photo: (sRGB uint8 (H, W, 3) RGB, true skin mask bool (H, W), pose 3 x 3 BEFORE -> this photo),
    and with ``maps`` the true chromophore maps of this photo, ``{"blood": b, "melanin": m}`` float32 (H, W) (the
    ``b`` and ``m`` of the model, blood scaled by the shot's ``blood_scale``; defined everywhere, use the mask)."""
    h, w = scene.size
    pose = smooth_pose(shot.pose, scene.size)
    inv = np.linalg.inv(pose)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    lin, mask, truth = _Scene(scene).linear(inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2],
                                            inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2], shot.blood_scale)
    lin = lin * shot.exposure
    if shot.blur > 0:
        lin = cv2.GaussianBlur(lin.astype(np.float32), (0, 0), shot.blur).astype(np.float64)
    lin = lin + np.random.default_rng([scene.seed, 77, shot.noise_seed]).normal(0, shot.noise, lin.shape)
    img = linear_to_srgb_uint8(np.clip(lin, 0.0, 1.0))
    if shot.jpeg is not None:
        img = _jpeg_roundtrip(img, shot.jpeg)
    if maps:
        return img, mask, pose, {k: np.asarray(v, np.float32) for k, v in truth.items()}
    return img, mask, pose


@dataclass
class SmoothPair:
    """Two photos (BEFORE, AFTER) of ``before`` / ``after`` scenes with their truth."""

    name: str
    before: SmoothScene
    after: SmoothScene
    shot_before: SmoothShot
    shot_after: SmoothShot
    same_site: bool
    true_change_pct: float  # blood change of the skin (same site), NaN for two sites
    tone: str = ""
    kind: str = "same_site"

    def render(self, *, maps: bool = False):
        """(BEFORE uint8, BEFORE mask, AFTER uint8, AFTER mask, truth 3 x 3 BEFORE pixels -> AFTER pixels), and with
        ``maps`` the true chromophore maps of each photo in its own frame (two dicts, :func:`render_smooth`)."""
        rb = render_smooth(self.before, self.shot_before, maps=maps)
        ra = render_smooth(self.after, self.shot_after, maps=maps)
        out = (rb[0], rb[1], ra[0], ra[1], ra[2] @ np.linalg.inv(rb[2]))
        return out + (rb[3], ra[3]) if maps else out


def _shot(rng, noise_seed: int, size, pose: bool = True, shift: float = 0.06) -> SmoothShot:
    h, w = size
    p = (float(rng.uniform(-shift, shift) * w), float(rng.uniform(-shift, shift) * h), float(rng.uniform(-5, 5)),
         float(rng.uniform(0.95, 1.05))) if pose else (0.0, 0.0, 0.0, 1.0)
    return SmoothShot(pose=p, exposure=float(rng.uniform(0.8, 1.2)) if pose else 1.0, noise_seed=noise_seed,
                      noise=float(rng.uniform(0.002, 0.004)), blur=float(rng.choice([0.0, 0.0, 0.6, 1.2])),
                      jpeg=int(rng.choice([85, 90, 95])))


def smooth_pairs(n: int, seed: int, size=(480, 640)) -> list[SmoothPair]:
    """``n`` same-site pairs (deterministic in ``seed``): tones cycle through :data:`SMOOTH_TONES`; every third
    block of six is unchanged retakes, the others a blood change drawn from :data:`SMOOTH_CHANGES`.  AFTER:
    shift up to 6 % of each side, rotation up to 5 degrees, scale 0.95-1.05, exposure x0.8-1.2."""
    out, tones = [], list(SMOOTH_TONES)
    for i in range(n):
        rng = np.random.default_rng([seed, i, 5])
        tone = tones[i % len(tones)]
        sc = SmoothScene(seed=seed + i, size=size, melanin=SMOOTH_TONES[tone] * float(rng.uniform(0.85, 1.15)),
                         blood=float(rng.uniform(0.30, 0.55)), site=("strip", "blob")[(i // len(tones)) % 2],
                         background=list(SMOOTH_BACKDROPS)[int(rng.integers(len(SMOOTH_BACKDROPS)))],
                         spots=int(rng.integers(2, 7)), hair=bool(rng.random() < 0.8))
        k = int(rng.integers(len(SMOOTH_CHANGES)))
        change = 0.0 if (i // len(tones)) % 3 == 0 else float(SMOOTH_CHANGES[k])
        sb = _shot(rng, 1, size, pose=False)
        sb = replace(sb, noise=float(rng.uniform(0.002, 0.004)), jpeg=int(rng.choice([85, 90, 95])),
                     blur=float(rng.choice([0.0, 0.0, 0.6, 1.2])))
        sa = replace(_shot(rng, 2, size), blood_scale=1 + change / 100)
        out.append(SmoothPair(f"s{seed + i}", sc, sc, sb, sa, True, change, tone,
                              "retake" if change == 0 else "change"))
    return out


def wrong_site_pairs(n: int, seed: int, size=(480, 640)) -> list[SmoothPair]:
    """``n`` pairs of two *different* pieces of skin: in turn the same person at another site (tone, blood, site
    kind), another person, and a look-alike (the same outline jittered by 8 %, other spots, hair and blood
    pattern).  AFTER has a new pose and exposure as in :func:`smooth_pairs`."""
    out, tones = [], list(SMOOTH_TONES)
    for i in range(n):
        rng = np.random.default_rng([seed, i, 9])
        tone = tones[i % len(tones)]
        kind = ("other_site", "other_person", "lookalike")[i % 3]
        backdrop = list(SMOOTH_BACKDROPS)[int(rng.integers(len(SMOOTH_BACKDROPS)))]
        a = SmoothScene(seed=seed + 2 * i, size=size, melanin=SMOOTH_TONES[tone], blood=float(rng.uniform(0.3, 0.55)),
                        site=("strip", "blob")[(i // 3) % 2], background=backdrop, spots=int(rng.integers(2, 7)),
                        hair=bool(rng.random() < 0.8))
        if kind == "other_site":
            b = replace(a, seed=seed + 2 * i + 1, spots=int(rng.integers(2, 7)))
        elif kind == "other_person":
            b = replace(a, seed=seed + 2 * i + 1, melanin=SMOOTH_TONES[tones[int(rng.integers(len(tones)))]],
                        blood=float(rng.uniform(0.3, 0.55)), site=("strip", "blob")[int(rng.integers(2))])
        else:
            b = replace(a, seed=seed + 2 * i + 1, shape_seed=seed + 2 * i, shape_jitter=0.08)
        out.append(SmoothPair(f"w{seed + i}-{kind}", a, b, _shot(rng, 1, size, pose=False), _shot(rng, 2, size),
                              False, float("nan"), tone, kind))
    return out


def grid_residual(h_est: np.ndarray, truth: np.ndarray, shape, n: int = 16) -> float:
    """RMS distance (px) between the points of an ``n`` x ``n`` grid spanning BEFORE (corners included) mapped by the
    estimated and by the true BEFORE -> AFTER matrix (3 x 3 each); ``shape`` = BEFORE's (H, W)."""
    hh, ww = shape[:2]
    ys, xs = np.mgrid[0 : hh - 1 : complex(n), 0 : ww - 1 : complex(n)]
    p = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    a, b = np.asarray(h_est, float) @ p, np.asarray(truth, float) @ p
    d = np.hypot(a[0] / a[2] - b[0] / b[2], a[1] / a[2] - b[1] / b[2])
    return float(np.sqrt(np.mean(d * d)))
