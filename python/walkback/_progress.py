"""Progress bars (tqdm) for long work, or a silent stand-in."""

from __future__ import annotations


class _NoBar:
    def update(self, k=1):
        pass

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


def progress_bar(total: int, show: bool, desc: str, unit: str):
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, desc=desc)
