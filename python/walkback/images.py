"""Pictures of samples and chains (Pillow): image grids, chain animations, inpainting."""

from __future__ import annotations

import numpy as np


def _check_scale(scale) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale: expected an integer >= 1 (pixels per unit), got {scale!r}")
    return int(scale)


def _check_finite(name, a) -> None:
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or infinite values (nothing to draw there)")


def _tile(images, cols, pad=1, scale=4):
    scale = _check_scale(scale)
    n, h, w = images.shape
    rows = (n + cols - 1) // cols
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), 0.5, np.float32)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        canvas[
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + c * (w + pad) : pad + c * (w + pad) + w,
        ] = im
    img = (np.clip(canvas, 0, 1) * 255).astype(np.uint8)
    return np.kron(img, np.ones((scale, scale), np.uint8))


def save_grid(images, path, cols=10, scale=4):
    """images: (n, h, w) values in [0, 1] -> a PNG grid, `cols` per row, white = 1."""
    from PIL import Image

    images = np.asarray(images, np.float32)
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"images: expected (n, h, w) with n >= 1, got shape {images.shape}")
    if isinstance(cols, bool) or not isinstance(cols, (int, np.integer)) or cols < 1:
        raise ValueError(f"cols: expected an integer >= 1, got {cols!r}")
    _check_finite("images", images)
    Image.fromarray(_tile(images, cols, scale=scale)).save(path)


def save_chain_gif(frames, path, scale=8, ms_per_frame=80):
    """frames: (T, h, w) -> an animated GIF of one chain wandering."""
    from PIL import Image

    frames = np.asarray(frames, np.float32)
    if frames.ndim != 3 or len(frames) == 0:
        raise ValueError(f"frames: expected (T, h, w) with T >= 1, got shape {frames.shape}")
    _check_finite("frames", frames)
    pics = [Image.fromarray(_tile(f[None], 1, pad=0, scale=scale)) for f in frames]
    pics[0].save(path, save_all=True, append_images=pics[1:], duration=ms_per_frame, loop=0)


def save_inpainting(original, clamp_mask, completed, path, scale=4):
    """Three rows per example: the original, the clamped part alone (free units drawn as a
    checkerboard) and the chain's completion. original, completed: (n, h, w); clamp_mask:
    (h, w) bool."""
    original = np.asarray(original, np.float32)
    clamp_mask = np.asarray(clamp_mask, bool)
    if original.ndim != 3 or clamp_mask.shape != original.shape[1:]:
        raise ValueError(
            f"original (n, h, w) and clamp_mask (h, w) do not fit: {original.shape}, "
            f"{clamp_mask.shape}"
        )
    completed = np.asarray(completed, np.float32)
    if completed.shape != original.shape:
        raise ValueError(
            f"completed: expected the shape of original {original.shape}, got {completed.shape}"
        )
    # The free units as a fine checkerboard: unknown, and unlike the grid's grey padding.
    h, w = clamp_mask.shape
    checker = np.where((np.arange(h)[:, None] + np.arange(w)[None]) % 2 == 0, 0.3, 0.7)
    shown = np.where(clamp_mask[None], original, checker[None])
    rows = np.concatenate([original, shown, completed])
    save_grid(rows, path, cols=len(original), scale=scale)


def save_scatter_panels(panels, titles, path, size=220, limits=None):
    """2-D point clouds side by side, one panel each (the diffusion paper's figure 1): panels
    is a list of (n, 2) arrays, titles their captions; limits (lo, hi) is shared by both axes
    of every panel (default: the data's range). Each pixel is shaded by the points on it."""
    from PIL import Image, ImageDraw

    pts = [np.asarray(p, np.float64) for p in panels]
    if any(p.ndim != 2 or p.shape[1] != 2 for p in pts):
        raise ValueError("panels: expected (n, 2) arrays")
    if limits is None:
        allp = np.concatenate(pts)
        allp = allp[np.isfinite(allp).all(axis=1)]
        if len(allp) == 0:
            raise ValueError("panels: no finite point to draw")
        limits = (float(allp.min()), float(allp.max()))
    lo, hi = limits
    if not hi > lo:  # one point, or all equal: a unit-wide window around them
        lo, hi = lo - 0.5, hi + 0.5
    head, pad = 18, 6
    img = Image.new("RGB", (len(pts) * (size + pad) + pad, size + head + pad), "white")
    draw = ImageDraw.Draw(img)
    if len(titles) != len(pts):
        raise ValueError(f"titles: expected {len(pts)} captions, got {len(titles)}")
    blue = np.array([20, 60, 160], np.float64)
    for k, (p, title) in enumerate(zip(pts, titles, strict=True)):
        x0 = pad + k * (size + pad)
        # Points outside the window are left out (clipped, they would line its frame).
        p = p[np.isfinite(p).all(axis=1) & ((p >= lo) & (p <= hi)).all(axis=1)]
        uv = (((p - lo) / (hi - lo)) * (size - 3)).astype(int) + 1
        # Each pixel shaded by how many points fall on it (a lone point pale, a pile dark), so
        # a few stray points do not look like as much mass as a dense cluster.
        counts = np.zeros((size, size), np.int64)
        np.add.at(counts, (size - 1 - uv[:, 1], uv[:, 0]), 1)  # image rows run downwards
        shade = np.where(
            counts > 0, np.minimum(1.0, 0.35 + 0.65 * np.log2(np.maximum(counts, 1)) / 5), 0
        )
        panel = 255 - (255 - blue) * shade[..., None]  # 32 points on a pixel: darkest
        img.paste(Image.fromarray(panel.astype(np.uint8)), (x0, head))
        draw.rectangle([x0, head, x0 + size - 1, head + size - 1], outline=(160, 160, 160))
        draw.text((x0 + 4, 3), str(title), fill="black")
    img.save(path)


# Eight well-separated colours for label tracks (more classes cycle through them).
_PALETTE = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
]


def save_label_tracks(groups, path, cell=3, track=10):
    """Label sequences as coloured strips, one cell per position: ``groups`` is a list (one per
    sequence) of lists of (caption, labels) with labels (L,) integers, -1 past the end (drawn
    white). Tracks of a group sit together, groups are separated by a gap."""
    from PIL import Image, ImageDraw

    if not groups or not all(groups):
        raise ValueError("groups: expected a non-empty list of non-empty lists of tracks")
    label_w = 110
    width = max(len(np.asarray(lab)) for g in groups for _, lab in g) * cell + label_w + 8
    height = sum(len(g) * (track + 2) + 10 for g in groups) + 4
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    y = 4
    for g in groups:
        for caption, labels in g:
            draw.text((4, y - 1), str(caption), fill="black")
            for i, lab in enumerate(np.asarray(labels)):
                if lab >= 0:
                    x0 = label_w + i * cell
                    colour = _PALETTE[int(lab) % len(_PALETTE)]
                    draw.rectangle([x0, y, x0 + cell - 1, y + track - 1], fill=colour)
            y += track + 2
        y += 10
    img.save(path)
