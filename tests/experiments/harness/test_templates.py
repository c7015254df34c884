"""Compiling lm-eval's templates once renders exactly what lm-eval's own ``apply_template`` renders."""

from lm_eval import utils

from experiments.harness.templates import compile_templates_once

TEMPLATES = ["Question: {{question}}\nAnswer:", "{{choices.text}}", "{{answer | regex_replace('#### ', '')}}",
             "{{ (question ~ ' ' ~ answer) | trim }}", "{{choices.label.index(answerKey)}}"]
DOCS = [dict(question="What is 2+2?", answer="#### 4", choices=dict(text=["3", "4"], label=["A", "B"]),
             answerKey="B"),
        dict(question=" Why? ", answer="because #### 5", choices=dict(text=["x"], label=["A"]), answerKey="A")]


def test_renders_what_lm_eval_renders():
    compile_templates_once()
    compile_templates_once()  # idempotent: wraps lm-eval's function once
    patched = utils.apply_template
    original = patched.lm_eval_original
    assert not getattr(original, "compiles_once", False)
    for _ in range(2):  # the second round renders from compiled templates
        for template in TEMPLATES:
            for doc in DOCS:
                assert patched(template, doc) == original(template, doc)
