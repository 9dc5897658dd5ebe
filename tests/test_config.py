import io

import walkback as wb
from walkback import _backend


def test_show_config_reports_blas_threads_and_cuda():
    buf = io.StringIO()
    info = wb.show_config(file=buf)
    text = buf.getvalue()
    assert "OpenBLAS" in info["blas"] and "OpenBLAS" in text
    assert info["threads"] == wb.get_num_threads() >= 1
    supported = _backend.cpu().packed_gemm_supported()
    assert ("kernel" in info["packed_gemm"]) == supported
    assert info["cuda_devices"] == (0 if not wb.cuda_built() else info["cuda_devices"])
    assert wb.cuda_available() == (wb.cuda_built() and info["cuda_devices"] > 0)


def test_set_num_threads_round_trip():
    n = wb.get_num_threads()
    try:
        wb.set_num_threads(3)
        assert wb.get_num_threads() == 3
    finally:
        wb.set_num_threads(n)
    assert wb.get_num_threads() == n
