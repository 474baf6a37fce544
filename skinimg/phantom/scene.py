"""The scene of a phantom in its canonical frame: skin, spots, patches, distractors, background, chart.

Scene
-----
The scene is built in a canonical frame 1.5 times larger than the photo (so a pose
never exposes an empty border), in units of ``u = min(H, W)`` pixels, so that the same
``seed`` gives the same person at any pose.  The camera pose ``(dx, dy, rotation,
scale)`` then maps canonical pixels to the photo (``cv2.warpAffine``; the truth maps
with the same matrix, the mask and labels with nearest-neighbour).  Contents:

* skin: a face (ellipsoid shading, soft Blinn-Phong highlight, natural cheek flush,
  neck shadowed under the jaw) or a forearm (cylinder shading), with low-frequency
  chromophore variation (+-12 % melanin, +-15 % blood), fine micro-texture (+-8 %
  melanin, pores and relief as shading) that gives feature detectors hundreds of
  key points;
* ``spots`` brown macules: irregular super-Gaussian blobs of radius 0.006-0.022 u
  (about 1.5-6 mm on a face 14 cm wide), melanin raised by 1-2.5 x the local value
  plus 0.03;
* ``red_patches``: blotchy Gaussian patches of radius 0.03-0.08 u, blood raised by
  1-2 x plus 0.01;
* distractors (truth mask false): ``hair`` (mass and single strands over the skin,
  black/brown/auburn/blond/grey), ``lips`` (rendered with the skin model at high blood,
  so they are skin-coloured red), ``eye`` (sclera, iris, pupil, brows), ``clothing``
  (including beige and pink), ``shadow`` (a cast shadow on the background);
* background ``wall`` (beige plaster), ``wood`` (planks with grain), ``cloth``
  (woven, with folds), ``dark``, ``blue`` (backdrop) or ``grey``;
* optional 24-patch ColorChecker, spectrally rendered, with a small perspective tilt.

The camera (blur, exposure, noise, JPEG) is :func:`skinimg.phantom.render_phantom`.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .frame import (_CLOTHES, _CLOTHS, _HAIRS, _IRISES, _WALLS, _WOODS, _bbox, _bezier, _blend, _blinn, _draw_curves,
                    _Frame, _lambert, _material, _soft)
from .optics import (_HB_MAX, _MEL_MAX, DEFAULT_OPTICS, WAVELENGTHS_NM, _table_lookup, illuminant_white,
                     reflectance_to_linear_rgb, render_chart_patches)
from .spec import LABELS, PhantomSpec, _rng


class _Scene:
    """Builds the canonical-frame radiance, truth maps and labels for one spec."""

    def __init__(self, spec: PhantomSpec, optics=DEFAULT_OPTICS):
        self.optics = optics
        self.spec = spec
        self.f = _Frame(spec)
        self.ill = spec.illuminant
        self.white = illuminant_white(self.ill)
        f = self.f
        shape = (f.hc, f.wc)
        self.img = np.zeros(shape + (3,), dtype=np.float32)
        self.labels = np.zeros(shape, dtype=np.uint8)
        self.choice = _rng(spec.seed, 1)
        c = self.choice
        self.wall_rgb = _WALLS[c.integers(len(_WALLS))]
        self.wood_rgb = _WOODS[c.integers(len(_WOODS))]
        self.cloth_bg_rgb = _CLOTHS[c.integers(len(_CLOTHS))]
        self.clothes_rgb = _CLOTHES[c.integers(len(_CLOTHES))]
        self.hair_rgb = _HAIRS[c.integers(len(_HAIRS))]
        self.iris_rgb = _IRISES[c.integers(len(_IRISES))]
        self.jitter = c.uniform(-1.0, 1.0, size=8)
        # shared texture fields (each from its own stream: adding one never shifts another)
        self.low = f.noise(_rng(spec.seed, 2), 2.5)
        self.mid = f.noise(_rng(spec.seed, 3), 10.0)
        self.micro = f.noise(_rng(spec.seed, 4), 160.0)
        self.fine = f.noise(_rng(spec.seed, 5), 300.0, interp=cv2.INTER_LINEAR)
        self.thin = max(1, int(round(f.u / 400.0)))

    # --- materials ------------------------------------------------------------------------
    def _mat(self, rgb8) -> np.ndarray:
        return _material(rgb8, self.ill)

    def background(self) -> None:
        f, spec = self.f, self.spec
        x, y = f.x, f.y
        light = np.float32(1.0) - np.float32(0.10) * (x + y) / np.float32(2.0)  # soft falloff from upper left
        kind = spec.background
        if kind == "wall":
            tex = 1 + 0.04 * self.low + 0.02 * self.mid + 0.025 * self.micro + 0.02 * self.fine
            col = self._mat(self.wall_rgb)
            self.img[:] = (tex * light)[..., None] * col
        elif kind == "wood":
            rng = _rng(spec.seed, 20)
            pw = 0.16 + 0.04 * float(rng.random())
            grain_n = f.noise(rng, 1.5, 25.0)
            yy = y + np.float32(0.0 * x)
            plank = np.floor(yy / np.float32(pw)).astype(np.int32)
            tone = rng.random(64).astype(np.float32)[(plank - plank.min()) % 64]
            phase = yy * np.float32(55.0) + np.float32(1.2) * grain_n + np.float32(0.3) * self.mid
            grain = np.float32(0.5) + np.float32(0.5) * np.sin(np.float32(2 * np.pi) * phase)
            t = np.clip(0.25 + 0.45 * tone + 0.3 * grain ** 3 - 0.15 * grain, 0, 1)[..., None]
            dark, lightc = self._mat(self.wood_rgb[0]), self._mat(self.wood_rgb[1])
            col = dark + t * (lightc - dark)
            frac = (yy / np.float32(pw)) - np.floor(yy / np.float32(pw))
            seam = np.minimum(frac, 1 - frac) * np.float32(pw * f.u)
            seam_f = np.float32(0.45) + np.float32(0.55) * np.clip(seam / 1.5, 0, 1)
            tex = (1 + 0.03 * self.micro + 0.02 * self.fine) * seam_f * light
            self.img[:] = col * tex[..., None]
        elif kind == "cloth":
            freq = np.float32(2 * np.pi * 110.0)
            weave = np.sin(freq * x) * np.sin(freq * y)
            folds = f.noise(_rng(spec.seed, 21), 1.2, 5.0)
            tex = (1 + 0.07 * weave + 0.12 * folds + 0.03 * self.micro) * light
            self.img[:] = tex[..., None] * self._mat(self.cloth_bg_rgb)
        elif kind == "dark":
            tex = (1 + 0.08 * self.low + 0.06 * self.micro) * light
            self.img[:] = tex[..., None] * self._mat((38, 36, 40))
        elif kind == "blue":
            tex = (1 + 0.05 * self.low + 0.02 * self.micro + 0.015 * self.fine) * light
            self.img[:] = tex[..., None] * self._mat((66, 104, 150))
        else:  # grey
            tex = (1 + 0.03 * self.low + 0.02 * self.micro) * light
            self.img[:] = tex[..., None] * self._mat((128, 128, 128))

    def cast_shadow(self, silhouette: np.ndarray) -> None:
        f = self.f
        # offset and blurred silhouette, computed at a reduced resolution (a soft shadow)
        k = max(1, int(f.u // 240))
        small = cv2.resize(silhouette, (f.wc // k, f.hc // k), interpolation=cv2.INTER_AREA)
        uk = f.u / k
        m = np.float32([[1, 0, 0.05 * uk], [0, 1, 0.035 * uk]])
        sh = cv2.warpAffine(small, m, (small.shape[1], small.shape[0]), flags=cv2.INTER_LINEAR, borderValue=0)
        sig = 0.015 * uk
        sh = cv2.GaussianBlur(sh, (0, 0), sigmaX=sig, sigmaY=sig)
        sh = cv2.resize(sh, (f.wc, f.hc), interpolation=cv2.INTER_LINEAR)
        self.img *= (1.0 - 0.5 * sh)[..., None]

    # --- skin geometry ------------------------------------------------------------------------
    def face_geometry(self) -> None:
        """Face (egg-shaped ellipsoid with a nose bump) and neck: coverage, normals, shading."""
        f, spec, j = self.f, self.spec, self.jitter
        fs = 0.85 if spec.chart else 1.0
        fcx = (-0.17 * f.half_view[0] / 0.667 if spec.chart else 0.0) + 0.02 * j[0]
        fcy = -0.03 + 0.02 * j[1]
        a, b = 0.26 * fs, 0.36 * fs
        self.face = dict(cx=fcx, cy=fcy, a=a, b=b, fs=fs)
        # all face computations happen in a window around head and neck (speed at large sizes)
        c0 = int(np.clip(math.floor(f.px(fcx - 1.35 * a, 0)[0]), 0, f.wc - 1))
        c1 = int(np.clip(math.ceil(f.px(fcx + 1.35 * a, 0)[0]) + 1, c0 + 1, f.wc))
        r0 = int(np.clip(math.floor(f.px(0, fcy - 1.25 * b)[1]), 0, f.hc - 1))
        self.fw = (slice(r0, f.hc), slice(c0, c1))
        x, y = f.x[:, self.fw[1]], f.y[self.fw[0]]
        yf = (y - np.float32(fcy)) / np.float32(b)
        a_eff = np.float32(a) * (1 - np.float32(0.18) * np.clip(yf, 0, 1) ** 2)
        xf = (x - np.float32(fcx)) / a_eff
        r = np.sqrt(xf * xf + yf * yf)
        face_a = _soft((1 - r) * np.float32(min(a, b)), f.u)
        nz = np.sqrt(np.clip(1 - r * r, 0, 1))
        # a flattened ellipsoid (depth/width 0.55 in the normal): cheeks and forehead face the camera
        nx, ny = np.float32(0.55) * xf, np.float32(0.55) * np.broadcast_to(yf, xf.shape)
        # nose: a Gaussian height bump down the middle of the face
        dxn = (x - np.float32(fcx)) / np.float32(0.035 * fs)
        dyn = (y - np.float32(fcy + 0.12 * b)) / np.float32(0.10 * fs)
        hb = np.exp(-(dxn * dxn) - (dyn * dyn) ** 2)
        nx += np.float32(0.9) * hb * dxn
        ny += np.float32(0.4) * hb * dyn
        norm = np.sqrt(nx * nx + ny * ny + nz * nz) + np.float32(1e-6)
        nx, ny, nz = nx / norm, ny / norm, nz / norm
        face_shade = _lambert(nx, ny, nz, spec.shading)
        face_spec = _blinn(nx, ny, nz)
        # neck: vertical cylinder below the face, in the jaw's shadow near the chin
        nw = 0.11 * fs
        tn = (x - np.float32(fcx)) / np.float32(nw)
        neck_a = np.minimum(_soft((1 - np.abs(tn)) * np.float32(nw), f.u), _soft(y - np.float32(fcy + 0.3 * b), f.u))
        nnz = np.sqrt(np.clip(1 - tn * tn, 0, 1))
        jaw = np.clip((y - np.float32(fcy + 0.9 * b)) / np.float32(0.15), 0, 1)
        neck_shade = _lambert(np.clip(tn, -1, 1), np.float32(0.0), nnz, spec.shading) * (0.55 + 0.45 * jaw)
        neck_shade = 1 + np.float32(spec.shading) * (neck_shade - 1)
        use_face = face_a > 0.02
        self.skin_alpha = self._embed(np.maximum(face_a, neck_a), 0.0)
        self.shade = self._embed(np.where(use_face, face_shade, neck_shade), 1.0)
        self.spec_map = self._embed(np.where(use_face, face_spec, _blinn(np.clip(tn, -1, 1), np.float32(0.0), nnz)), 0.0)
        self.face_alpha = face_a  # window arrays
        self.xf, self.yf = xf, yf

    def _embed(self, win_arr: np.ndarray, fill: float) -> np.ndarray:
        """A canonical-size float32 array equal to ``fill`` outside the face window."""
        out = np.full((self.f.hc, self.f.wc), fill, dtype=np.float32)
        out[self.fw] = win_arr
        return out

    def arm_geometry(self) -> None:
        """Forearm: a tapering cylinder across the frame."""
        f, spec, j = self.f, self.spec, self.jitter
        ang = math.radians(-8.0 + 4.0 * j[0])
        ca, sa = np.float32(math.cos(ang)), np.float32(math.sin(ang))
        oy = np.float32(0.02 + 0.03 * j[1] + (0.12 if spec.chart else 0.0))
        x, y = f.x, f.y
        s = x * ca + (y - oy) * sa
        t = -x * sa + (y - oy) * ca
        w = np.float32(0.19) - np.float32(0.035) * np.clip((s + 1.0) / 2.0, 0, 1)
        if spec.chart:
            w = w * np.float32(0.8)
        tn = t / w
        self.arm = dict(ang=ang, oy=float(oy), s=s, t=t, w=w)
        self.skin_alpha = _soft((1 - np.abs(tn)) * w, f.u)
        nz = np.sqrt(np.clip(1 - tn * tn, 0, 1))
        tc = np.clip(tn, -1, 1)
        nx, ny = -tc * sa, tc * ca
        self.shade = _lambert(nx, ny, nz, spec.shading)
        self.spec_map = _blinn(nx, ny, nz, 25.0)
        self.face_alpha = None

    # --- occluders (coverage only) -------------------------------------------------------------
    def face_occluders(self) -> dict:
        f, spec, j = self.f, self.spec, self.jitter
        fc = self.face
        fcx, fcy, a, b, fs = fc["cx"], fc["cy"], fc["a"], fc["b"], fc["fs"]
        x, y = f.x[:, self.fw[1]], f.y[self.fw[0]]
        occ: dict = {}
        d = spec.distractors
        if "lips" in d:
            yl = fcy + 0.62 * b
            wl, hu, hl = 0.078 * fs, 0.020 * fs, 0.026 * fs
            lx = (x - np.float32(fcx)) / np.float32(wl)
            inside = np.clip(1 - lx * lx, 0, 1)
            y_up = np.float32(yl) - np.float32(hu) * inside * (1 - 0.3 * np.exp(-(lx / 0.15) ** 2))
            y_lo = np.float32(yl) + np.float32(hl) * inside
            dd = np.minimum(np.minimum(y - y_up, y_lo - y), (1 - np.abs(lx)) * np.float32(wl * 0.5))
            occ["lips"] = self._embed(_soft(dd, f.u), 0.0)
            self.lip_line = np.float32(yl)
        if "eye" in d:
            eyes = np.zeros(self.face_alpha.shape, dtype=np.float32)
            self.eye_parts = []
            brows = []
            for sx in (-1.0, 1.0):
                ecx, ecy = fcx + sx * 0.105 * fs, fcy - 0.04 * fs
                ew, eh = 0.052 * fs, 0.021 * fs
                ex = (x - np.float32(ecx)) / np.float32(ew)
                ey = (y - np.float32(ecy)) / np.float32(eh)
                dd = (1 - ex * ex - np.abs(ey)) * np.float32(eh)
                eyes = np.maximum(eyes, _soft(dd, f.u))
                self.eye_parts.append((ecx, ecy, ew, eh))
                xs = np.linspace(-1.0, 1.0, 20)
                bx = ecx + sx * 0.008 + xs * 0.062 * fs
                by = ecy - 0.052 * fs - 0.014 * fs * (1 - xs**2) + 0.006 * xs * sx
                brows.append(np.stack(f.px(bx, by), axis=1))
            occ["eye"] = self._embed(eyes, 0.0)
            occ["brows"] = _draw_curves((f.hc, f.wc), brows, max(2, int(round(0.015 * f.u * fs))))
        if "hair" in d:
            ccx, ccy = fcx, fcy - 0.03 * fs
            a2, b2 = a * 1.2, b * 1.13
            e2 = np.sqrt(((x - np.float32(ccx)) / np.float32(a2)) ** 2 + ((y - np.float32(ccy)) / np.float32(b2)) ** 2)
            in_e2 = _soft((1 - e2) * np.float32(min(a2, b2)), f.u)
            hairline = np.float32(-0.55 + 0.08 * j[2]) + np.float32(0.45) * self.xf * self.xf
            above = _soft((hairline - self.yf) * np.float32(b), f.u)
            side_cut = _soft(np.float32(fcy + 0.3 * b) - y, f.u)
            occ["hair"] = self._embed(np.minimum(np.minimum(in_e2, np.maximum(above, 1 - self.face_alpha)), side_cut), 0.0)
            rng = _rng(spec.seed, 40)
            strands = []
            for _ in range(28):
                sx = fcx + a * rng.uniform(-0.85, 0.85)
                xf0 = (sx - fcx) / a
                sy = fcy + b * (-0.55 + 0.45 * xf0**2) - 0.01
                length = rng.uniform(0.06, 0.28)
                ang = math.radians(90 + rng.uniform(-35, 35) + 25 * xf0)
                p2 = (sx + length * math.cos(ang), sy + length * math.sin(ang))
                p1 = (sx + 0.5 * length * math.cos(ang) + rng.uniform(-0.04, 0.04), sy + 0.5 * length * math.sin(ang))
                pts = _bezier((sx, sy), p1, p2)
                strands.append(np.stack(f.px(pts[:, 0], pts[:, 1]), axis=1))
            occ["strands"] = _draw_curves((f.hc, f.wc), strands, self.thin)
        if "clothing" in d:
            x, y = f.x, f.y
            edge = np.float32(fcy + b + 0.05 * fs) + np.float32(0.09 * fs) * np.exp(-(((x - np.float32(fcx)) / np.float32(0.13 * fs)) ** 2))
            occ["clothing"] = np.minimum(_soft(y - edge, f.u), _soft(np.float32(0.85) - np.abs(x - np.float32(fcx)), f.u))
            self.clothing_edge = edge
        return occ

    def arm_occluders(self) -> dict:
        f, spec, j = self.f, self.spec, self.jitter
        arm = self.arm
        s, t, w = arm["s"], arm["t"], arm["w"]
        occ: dict = {}
        s0 = -0.55 + 0.05 * j[3]
        if "clothing" in spec.distractors:
            occ["clothing"] = np.minimum(_soft(np.float32(s0) - s, f.u), _soft(w + np.float32(0.035) - np.abs(t), f.u))
            self.sleeve = (s0,)
        if "hair" in spec.distractors:
            rng = _rng(spec.seed, 41)
            ang0 = arm["ang"]
            oy = arm["oy"]
            strands = []
            for _ in range(320):
                ss = rng.uniform(s0, 1.1)
                ww = 0.19 - 0.035 * min(max((ss + 1.0) / 2.0, 0.0), 1.0)
                tt = rng.uniform(-0.92, 0.92) * ww
                px0 = ss * math.cos(ang0) - tt * math.sin(ang0)
                py0 = oy + ss * math.sin(ang0) + tt * math.cos(ang0)
                ang = ang0 + rng.uniform(-0.4, 0.4) + (0.0 if rng.random() < 0.5 else math.pi)
                length = rng.uniform(0.012, 0.035)
                bend = rng.uniform(-0.004, 0.004)
                p2 = (px0 + length * math.cos(ang), py0 + length * math.sin(ang))
                p1 = ((px0 + p2[0]) / 2 - bend * math.sin(ang), (py0 + p2[1]) / 2 + bend * math.cos(ang))
                pts = _bezier((px0, py0), p1, p2, n=8)
                strands.append(np.stack(f.px(pts[:, 0], pts[:, 1]), axis=1))
            occ["strands"] = _draw_curves((f.hc, f.wc), strands, self.thin)
        return occ

    # --- chromophores ----------------------------------------------------------------------------
    def _sample_on_skin(self, rng, visible: np.ndarray, n: int, r_range, tries: int = 80) -> list:
        """Centres (units) and radii (units) of ``n`` blobs lying on visible skin."""
        f = self.f
        rows = np.flatnonzero(visible.any(axis=1))
        cols = np.flatnonzero(visible.any(axis=0))
        out = []
        if rows.size == 0:
            return out
        x0, x1 = (cols[0] - (f.wc - 1) / 2) / f.u, (cols[-1] - (f.wc - 1) / 2) / f.u
        y0, y1 = (rows[0] - (f.hc - 1) / 2) / f.u, (rows[-1] - (f.hc - 1) / 2) / f.u
        # stay inside the photo at the identity pose so that spots are visible
        hx, hy = f.half_view
        x0, x1 = max(x0, -hx + 0.03), min(x1, hx - 0.03)
        y0, y1 = max(y0, -hy + 0.03), min(y1, hy - 0.03)
        cand = rng.uniform(size=(n * tries, 3))
        for cx_, cy_, cr in cand:
            if len(out) == n:
                break
            cx = x0 + cx_ * (x1 - x0)
            cy = y0 + cy_ * (y1 - y0)
            r = r_range[0] + cr * (r_range[1] - r_range[0])
            ok = True
            for ox, oy in ((0, 0), (1.6, 0), (-1.6, 0), (0, 1.6), (0, -1.6)):
                px, py = f.px(cx + ox * r, cy + oy * r)
                ix, iy = int(round(px)), int(round(py))
                if not (0 <= iy < f.hc and 0 <= ix < f.wc and visible[iy, ix]):
                    ok = False
                    break
            if ok:
                out.append((cx, cy, r))
        return out

    def _blob(self, cx, cy, r, harmonics, power: float):
        """(slices, profile) of an irregular blob exp(-(rho / r_eff)^power) in a local window."""
        f = self.f
        px, py = f.px(cx, cy)
        rp = r * f.u
        half = int(math.ceil(2.2 * rp)) + 2
        r0, r1 = max(int(py) - half, 0), min(int(py) + half + 1, f.hc)
        c0, c1 = max(int(px) - half, 0), min(int(px) + half + 1, f.wc)
        if r0 >= r1 or c0 >= c1:
            return None, None
        yy = (np.arange(r0, r1, dtype=np.float32) - np.float32(py))[:, None]
        xx = (np.arange(c0, c1, dtype=np.float32) - np.float32(px))[None, :]
        rho = np.sqrt(xx * xx + yy * yy)
        phi = np.arctan2(yy, xx)
        mod = np.ones_like(rho)
        for k, (amp, ph) in enumerate(harmonics, start=2):
            mod += np.float32(amp) * np.cos(np.float32(k) * phi + np.float32(ph))
        prof = np.exp(-((rho / (np.float32(rp) * mod)) ** power))
        return (slice(r0, r1), slice(c0, c1)), prof.astype(np.float32)

    def chromophores(self, visible: np.ndarray) -> None:
        f, spec = self.f, self.spec
        tex = np.float32(spec.texture)
        mel_low = f.noise(_rng(spec.seed, 30), 3.0)
        hb_low = f.noise(_rng(spec.seed, 31), 3.5)
        hb_micro = f.noise(_rng(spec.seed, 32), 120.0)
        # base maps, computed only where there is skin (the rest keeps the base value)
        w = _bbox(self.skin_alpha > 0) or (slice(0, 1), slice(0, 1))
        mel = np.full((f.hc, f.wc), spec.melanin, dtype=np.float32)
        hb = np.full((f.hc, f.wc), spec.hemoglobin, dtype=np.float32)
        mel[w] = np.float32(spec.melanin) * np.clip(1 + 0.12 * mel_low[w] + 0.05 * self.mid[w], 0.3, None) * np.clip(
            1 + tex * 0.08 * self.micro[w], 0.3, None
        )
        hb[w] = np.float32(spec.hemoglobin) * np.clip(1 + 0.15 * hb_low[w], 0.3, None) * np.clip(
            1 + tex * 0.10 * hb_micro[w], 0.3, None
        )
        if spec.site == "face":
            fc = self.face
            x, y = f.x[:, w[1]], f.y[w[0]]
            flush = np.zeros(hb[w].shape, dtype=np.float32)
            for gx, gy, amp, sg in ((-0.14, 0.10, 0.35, 0.065), (0.14, 0.10, 0.35, 0.065), (0.0, 0.20, 0.25, 0.035)):
                gxx = (x - np.float32(fc["cx"] + gx * fc["fs"])) / np.float32(sg * fc["fs"])
                gyy = (y - np.float32(fc["cy"] + gy * fc["fs"])) / np.float32(sg * fc["fs"])
                flush += np.float32(amp) * np.exp(-0.5 * (gxx * gxx + gyy * gyy))
            hb[w] *= 1 + flush
        rng = _rng(spec.seed, 50)
        self.spot_list = []
        for cx, cy, r in self._sample_on_skin(rng, visible, spec.spots, (0.006, 0.022)):
            harm = [(rng.uniform(0, 0.12), rng.uniform(0, 2 * np.pi)) for _ in range(4)]
            k = rng.uniform(1.0, 2.5)
            sl, prof = self._blob(cx, cy, r, harm, 4.0)
            if sl is not None:
                mel[sl] = mel[sl] * (1 + np.float32(k) * prof) + np.float32(0.03) * prof
                self.spot_list.append({"x": cx, "y": cy, "radius": r, "gain": k})
        rng = _rng(spec.seed, 51)
        self.patch_list = []
        for cx, cy, r in self._sample_on_skin(rng, visible, spec.red_patches, (0.03, 0.08), tries=200):
            harm = [(rng.uniform(0, 0.2), rng.uniform(0, 2 * np.pi)) for _ in range(4)]
            k = rng.uniform(1.0, 2.0)
            sl, prof = self._blob(cx, cy, r, harm, 2.0)
            if sl is not None:
                blot = np.clip(0.7 + 0.3 * self.mid[sl] + 0.15 * hb_micro[sl], 0.2, None)
                hb[sl] = hb[sl] * (1 + np.float32(k) * prof * blot) + np.float32(0.01) * prof
                self.patch_list.append({"x": cx, "y": cy, "radius": r, "gain": k})
        mel *= np.float32(spec.melanin_scale)
        hb *= np.float32(spec.hemoglobin_scale)
        self.mel = np.clip(mel, 0, _MEL_MAX)
        self.hb = np.clip(hb, 0, _HB_MAX)

    # --- layers --------------------------------------------------------------------------------
    def skin_layer(self, sl) -> np.ndarray:
        spec = self.spec
        tex = np.float32(spec.texture)
        col = _table_lookup(self.mel[sl], self.hb[sl], self.ill, self.optics)
        relief = (1 + tex * 0.05 * self.fine[sl]) * (1 - tex * 0.35 * self.pores[sl])
        shade = self.shade[sl] * relief
        ks = np.float32(0.06 * spec.specular) * np.clip(1 + 0.5 * self.mid[sl], 0.2, 2) * np.clip(1 + 0.4 * self.micro[sl], 0, 2)
        return col * shade[..., None] + (ks * self.spec_map[sl])[..., None] * self.white

    def lips_layer(self, sl) -> np.ndarray:
        mel = np.full(self.mel[sl].shape, 0.55 * self.spec.melanin, dtype=np.float32)
        hb = (0.13 + 0.02 * self.mid[sl]).astype(np.float32)
        col = _table_lookup(mel, hb, self.ill, self.optics)
        y = self.f.y[sl[0]]
        line = 1 - 0.6 * np.exp(-(((y - self.lip_line) * np.float32(self.f.u) / np.float32(1.2 * self.thin)) ** 2))
        shade = self.shade[sl] * (1 + 0.06 * self.fine[sl]) * line
        return col * shade[..., None] + (np.float32(0.12 * self.spec.specular) * self.spec_map[sl])[..., None] * self.white

    def eye_layer(self, sl) -> np.ndarray:
        f = self.f
        x, y = f.x[:, sl[1]], f.y[sl[0]]
        out = np.broadcast_to(self._mat((228, 216, 206)), (y.shape[0], x.shape[1], 3)).copy()
        iris_c, pupil_c, hi_c = self._mat(self.iris_rgb), self._mat((12, 10, 10)), self._mat((250, 250, 250))
        lash = np.ones(out.shape[:2], dtype=np.float32)
        gaze = 0.004 * self.jitter[4]
        for ecx, ecy, ew, eh in self.eye_parts:
            icx, icy = ecx + gaze, ecy + 0.002
            ri = 0.019 * self.face["fs"]
            rr = np.sqrt((x - np.float32(icx)) ** 2 + (y - np.float32(icy)) ** 2) / np.float32(ri)
            ang = np.arctan2(y - np.float32(icy), x - np.float32(icx))
            streak = 0.75 + 0.25 * np.sin(ang * 23.0 + 3 * self.mid[sl]) * np.clip(rr, 0, 1)
            ring = 1 - 0.5 * np.clip((rr - 0.8) / 0.2, 0, 1)
            iris_a = _soft((1 - rr) * np.float32(ri), f.u)
            out += iris_a[..., None] * ((streak * ring)[..., None] * iris_c - out)
            pup_a = _soft((0.4 - rr) * np.float32(ri), f.u)
            out += pup_a[..., None] * (pupil_c - out)
            hl = np.sqrt((x - np.float32(icx - 0.3 * ri)) ** 2 + (y - np.float32(icy - 0.3 * ri)) ** 2)
            hl_a = _soft(np.float32(0.18 * ri) - hl, f.u)
            out += hl_a[..., None] * (hi_c - out)
            ex = (x - np.float32(ecx)) / np.float32(ew)
            ey = (y - np.float32(ecy)) / np.float32(eh)
            du = ey + (1 - ex * ex)
            lash = np.minimum(lash, np.where(np.abs(ex) < 1, 0.3 + 0.7 * np.clip(du / 0.4, 0, 1), 1))
        return out * (lash * self.shade[sl])[..., None]

    def hair_layer(self, sl, strand_tex: bool = True) -> np.ndarray:
        col = self._mat(self.hair_rgb)
        t = 0.75 + 0.5 * self.hair_tex[sl] + 0.1 * self.micro[sl]
        shade = 0.55 + 0.45 * self.shade[sl] if self.spec.site == "face" else self.shade[sl]
        sheen = np.float32(0.04 * self.spec.specular) * self.spec_map[sl] * np.clip(self.hair_tex[sl], 0, 1)
        return (t * shade)[..., None] * col + sheen[..., None] * self.white

    def clothing_layer(self, sl) -> np.ndarray:
        f = self.f
        x, y = f.x[:, sl[1]], f.y[sl[0]]
        freq = np.float32(2 * np.pi * 130.0)
        weave = np.sin(freq * (x + y)) * np.sin(freq * (x - y))
        folds = self.cloth_folds[sl]
        tex = 1 + 0.06 * weave + 0.15 * folds + 0.03 * self.micro[sl]
        if self.spec.site == "face":
            seam = 1 - 0.35 * np.exp(-(((y - self.clothing_edge[:, sl[1]]) * np.float32(f.u) / np.float32(2.5 * self.thin)) ** 2))
            shade = (0.8 + 0.2 * np.clip(1 - np.abs(x - np.float32(self.face["cx"])) / 0.9, 0, 1)) * seam
        else:
            shade = self.shade[sl]
        return (tex * shade)[..., None] * self._mat(self.clothes_rgb)

    # --- chart -----------------------------------------------------------------------------------
    def chart(self) -> dict:
        f, spec = self.f, self.spec
        rng = _rng(spec.seed, 60)
        gap, border = 0.25, 0.4
        wp, hp = 6 + 5 * gap + 2 * border, 4 + 3 * gap + 2 * border
        hx, hy = f.half_view
        cw = float(np.clip(hx - 0.06 - 0.16, 0.26, 0.46))
        ch = cw * hp / wp
        if spec.site == "face":
            ccx, ccy = hx - 0.05 - cw / 2, 0.12
        else:
            ccx, ccy = hx - 0.05 - cw / 2, -hy + 0.05 + ch / 2
        rot = math.radians(rng.uniform(-5, 5))
        corners = np.array([[-cw / 2, -ch / 2], [cw / 2, -ch / 2], [cw / 2, ch / 2], [-cw / 2, ch / 2]])
        corners += rng.uniform(-0.03, 0.03, size=(4, 2)) * np.array([cw, ch])  # perspective tilt
        rm = np.array([[math.cos(rot), -math.sin(rot)], [math.sin(rot), math.cos(rot)]])
        corners = corners @ rm.T + np.array([ccx, ccy])
        dst = np.stack(f.px(corners[:, 0], corners[:, 1]), axis=1).astype(np.float32)
        res = max(8, int(round(1.5 * cw * f.u / wp)))  # plane pixels per patch unit
        pw_, ph_ = int(round(wp * res)), int(round(hp * res))
        plane = np.empty((ph_, pw_, 3), dtype=np.float32)
        plane[:] = reflectance_to_linear_rgb(np.full(WAVELENGTHS_NM.size, 0.035), self.ill)
        patches = render_chart_patches(self.ill)
        centres = []
        for i in range(24):
            r_, c_ = divmod(i, 6)
            x0 = (border + c_ * (1 + gap)) * res
            y0 = (border + r_ * (1 + gap)) * res
            plane[int(round(y0)) : int(round(y0 + res)), int(round(x0)) : int(round(x0 + res))] = patches[i]
            centres.append((x0 + res / 2.0 - 0.5, y0 + res / 2.0 - 0.5))
        src = np.float32([[-0.5, -0.5], [pw_ - 0.5, -0.5], [pw_ - 0.5, ph_ - 0.5], [-0.5, ph_ - 0.5]])
        hmat = cv2.getPerspectiveTransform(src, dst)
        warped = cv2.warpPerspective(plane, hmat, (f.wc, f.hc), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        alpha = cv2.warpPerspective(np.ones((ph_, pw_), np.float32), hmat, (f.wc, f.hc), flags=cv2.INTER_LINEAR)
        _blend(self.img, alpha, lambda s: warped[s], self.labels, LABELS["chart"])
        cen = cv2.perspectiveTransform(np.float32(centres).reshape(-1, 1, 2), hmat).reshape(-1, 2)
        return {"corners_canonical": dst.astype(np.float64), "centres_canonical": cen.astype(np.float64),
                "patch_linear_rgb": patches}

    # --- assembly ----------------------------------------------------------------------------------
    def _hair_texture(self) -> np.ndarray:
        f, spec = self.f, self.spec
        tex = np.zeros((f.hc, f.wc), dtype=np.float32)
        if spec.site != "face" or "hair" not in spec.distractors:
            return tex
        fc = self.face
        rng = _rng(spec.seed, 42)
        crown = (fc["cx"], fc["cy"] - 1.05 * fc["b"])
        curves, vals = [], []
        for _ in range(700):
            px0 = fc["cx"] + rng.uniform(-1.25, 1.25) * fc["a"]
            py0 = fc["cy"] + rng.uniform(-1.2, 0.35) * fc["b"]
            ang = math.atan2(py0 - crown[1], px0 - crown[0]) + rng.uniform(-0.25, 0.25)
            length = rng.uniform(0.05, 0.16)
            p2 = (px0 + length * math.cos(ang), py0 + length * math.sin(ang))
            p1 = ((px0 + p2[0]) / 2 + rng.uniform(-0.015, 0.015), (py0 + p2[1]) / 2 + rng.uniform(-0.015, 0.015))
            pts = _bezier((px0, py0), p1, p2, n=12)
            curves.append(np.stack(f.px(pts[:, 0], pts[:, 1]), axis=1))
            vals.append(rng.integers(60, 256))
        tex = _draw_curves((f.hc, f.wc), curves, self.thin, vals)
        return tex - np.float32(0.3)

    def build(self) -> dict:
        f, spec = self.f, self.spec
        self.background()
        if spec.site == "face":
            self.face_geometry()
            occ = self.face_occluders()
        else:
            self.arm_geometry()
            occ = self.arm_occluders()
        zero = np.zeros((f.hc, f.wc), dtype=np.float32)
        covers = [occ.get(k, zero) for k in ("lips", "eye", "brows", "hair", "strands", "clothing")]
        visible = self.skin_alpha >= 0.5
        for c in covers:
            visible &= c < 0.5
        self.chromophores(visible)
        # pores: ~3 % of the cells of a 170-per-unit grid, smoothed on the grid, then resized
        self.pores = f.noise(
            _rng(spec.seed, 6), 170.0, interp=cv2.INTER_LINEAR,
            grid_fn=lambda g: cv2.GaussianBlur((g > 1.9).astype(np.float32), (0, 0), 0.6) * 2.2,
        )
        self.cloth_folds = f.noise(_rng(spec.seed, 22), 2.0, 4.0)
        self.hair_tex = self._hair_texture()
        if "shadow" in spec.distractors:
            sil = np.maximum(self.skin_alpha, np.maximum(occ.get("hair", zero), occ.get("clothing", zero)))
            self.cast_shadow(sil)
        lab = self.labels
        _blend(self.img, self.skin_alpha, self.skin_layer, lab, LABELS["skin"])
        if "lips" in occ:
            _blend(self.img, occ["lips"], self.lips_layer, lab, LABELS["lips"])
        if "eye" in occ:
            _blend(self.img, occ["eye"], self.eye_layer, lab, LABELS["eye"])
            _blend(self.img, occ["brows"], self.hair_layer, lab, LABELS["hair"])
        if "clothing" in occ:
            _blend(self.img, occ["clothing"], self.clothing_layer, lab, LABELS["clothing"])
        if "hair" in occ:
            _blend(self.img, occ["hair"], self.hair_layer, lab, LABELS["hair"])
        if "strands" in occ:
            _blend(self.img, occ["strands"], self.hair_layer, lab, LABELS["hair"])
        chart = self.chart() if spec.chart else None
        return {"chart": chart}
