#!/usr/bin/env python3
"""Renders the tool conversations of cases.json with the real Jinja chat templates in
tests/fuzz/chat_template/ (Qwen2.5-7B-Instruct, Qwen3, Llama 3.2 Instruct tokenizer_config.json),
configured as Hugging Face transformers' apply_chat_template configures jinja2
(src/transformers/utils/chat_template_utils.py: ImmutableSandboxedEnvironment with
trim_blocks and lstrip_blocks, a raise_exception global, and a tojson filter that is
json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)).
Writes FAMILY.CASE.txt next to this script; engine/tests/chat_tools_test.c compares the
engine's rendering with them byte for byte. Needs python3-jinja2 (scripts/setup).
  python3 engine/tests/chat_tools/render_golden.py"""
import json
import os
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, "..", "..", "..", "tests", "fuzz", "chat_template")
FAMILIES = {"qwen2.5": ("qwen2.5.jinja", ""), "qwen3": ("qwen3.jinja", ""),
            "llama3.2": ("llama3.2-instruct.jinja", "<|begin_of_text|>")}


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def main():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    with open(os.path.join(HERE, "cases.json"), encoding="utf-8") as f:
        spec = json.load(f)
    for case in spec["cases"]:
        for fam in case["families"]:
            file, bos = FAMILIES[fam]
            with open(os.path.join(TEMPLATES, file), encoding="utf-8") as f:
                tmpl = env.from_string(f.read())
            kwargs = {"messages": case["messages"], "add_generation_prompt": case["gen"],
                      "bos_token": bos, "eos_token": "", "date_string": "26 Jul 2024"}
            if case["tools"]:
                kwargs["tools"] = spec["tools"]
            out = tmpl.render(**kwargs)
            path = os.path.join(HERE, f"{fam}.{case['name']}.txt")
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(out)
            print(path, len(out), file=sys.stderr)


if __name__ == "__main__":
    main()
