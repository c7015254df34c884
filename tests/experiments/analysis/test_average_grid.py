"""The averages grid puts each row's average, its paired difference and CI in its (method, sparsity) cell; the
reference row has no difference, an unreachable one is n/a, dense is left out."""

from experiments.analysis.average_grid import average_grid

CSV = """sparsity,method,status,average,diff,ci_low,ci_high
0.0,dense,complete,46.5,,,
0.5,teal-topk,complete,45.25,,,
0.5,wina,complete,44.5,-0.75,-1.5,0.125
0.5,cats,not_reachable,,,,
0.65,teal-topk,complete,42.0,,,
0.65,wina,complete,41.5,-0.5,-1.25,0.25
"""


def test_cells(tmp_path):
    path = tmp_path / "x_paper.csv"
    path.write_text(CSV)
    lines = average_grid(str(path)).splitlines()
    assert lines[0] == "| method | 50% | 65% |"
    assert lines[2] == "| teal-topk | 45.25 | 42.00 |"
    assert lines[3] == "| wina | 44.50 (-0.75 [-1.50, +0.12]) | 41.50 (-0.50 [-1.25, +0.25]) |"
    assert lines[4] == "| cats | n/a |  |"
    assert not any("dense" in line for line in lines)
