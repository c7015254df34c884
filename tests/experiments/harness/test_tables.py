import pandas as pd

from experiments.harness.tables import markdown, markdown_table, text_table


def test_markdown_and_text_tables():
    assert markdown_table(["a", "b"], [[1, 0.5], ["x", float("nan")]], ".2f") == \
        "| a | b |\n|---|---|\n| 1 | 0.50 |\n| x | n/a |"
    assert text_table(["name", "v"], [["long-name", 1]]).splitlines() == ["name       v", "---------  -", "long-name  1"]
    df = pd.DataFrame({"acc": [0.5]}, index=pd.Index(["wina"], name="method"))
    assert markdown(df, ".1f") == "| method | acc |\n|---|---|\n| wina | 0.5 |"
