#!/usr/bin/env python3
"""Renders the tool conversations of cases.json with the real Jinja chat templates in
tests/fuzz/chat_template/ (Qwen2.5-7B-Instruct, Qwen3, Llama 3.2 Instruct tokenizer_config.json)
and with the Mistral V3 / V3-Tekken templates beside this script (written from Mistral's
documented format: see their header; json_value is mistral-common's _parse_json_content),
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
# family: (template, its directory, bos_token, eos_token)
FAMILIES = {"qwen2.5": ("qwen2.5.jinja", TEMPLATES, "", ""),
            "qwen3": ("qwen3.jinja", TEMPLATES, "", ""),
            "llama3.2": ("llama3.2-instruct.jinja", TEMPLATES, "<|begin_of_text|>", ""),
            "mistral-v3": ("mistral-v3.jinja", HERE, "<s>", "</s>"),
            "mistral-v3-tekken": ("mistral-v3-tekken.jinja", HERE, "<s>", "</s>")}


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


# The conversation of Mistral's tool-calling documentation (mistralai/cookbook
# concept-deep-dive/tokenization/tool_calling.md, "Final String Representation" of Tokenizer V3
# and of V3 - Tekken), case "cookbook": the templates must render exactly these strings.
DOCUMENTED = {
    "mistral-v3": '<s>[AVAILABLE_TOOLS] [{"type": "function", "function": {"name": "calculator", '
    '"description": "Performs mathematical calculations", "parameters": {"type": "object", '
    '"properties": {"operation": {"type": "string", "description": "The operation to be done in '
    'python format."}}, "required": ["operation"]}}}][/AVAILABLE_TOOLS][INST] What\'s 2+2?[/INST]'
    '[TOOL_CALLS] [{"name": "calculator", "arguments": {"operation": "2+2", "format": "celsius"}, '
    '"id": "VvvODy9mT"}]</s>[TOOL_RESULTS] {"content": 4, "call_id": "VvvODy9mT"}[/TOOL_RESULTS] '
    '2+2=4</s>',
    "mistral-v3-tekken": '<s>[AVAILABLE_TOOLS][{"type": "function", "function": {"name": '
    '"calculator", "description": "Performs mathematical calculations", "parameters": {"type": '
    '"object", "properties": {"operation": {"type": "string", "description": "The operation to be '
    'done in python format."}}, "required": ["operation"]}}}][/AVAILABLE_TOOLS][INST]What\'s 2+2?'
    '[/INST][TOOL_CALLS][{"name": "calculator", "arguments": {"operation": "2+2", "format": '
    '"celsius"}, "id": "VvvODy9mT"}]</s>[TOOL_RESULTS]{"content": 4, "call_id": "VvvODy9mT"}'
    '[/TOOL_RESULTS]2+2=4</s>',
}


def json_value(s):
    """A call's arguments or a tool result's content as mistral-common encodes it: the JSON value
    the string holds, else the string (a value that is not a string is already one)."""
    if not isinstance(s, str):
        return s
    try:
        return json.loads(s)
    except ValueError:
        return s


def main():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = tojson
    env.filters["json_value"] = json_value
    env.globals["raise_exception"] = raise_exception
    with open(os.path.join(HERE, "cases.json"), encoding="utf-8") as f:
        spec = json.load(f)
    for case in spec["cases"]:
        for fam in case["families"]:
            file, where, bos, eos = FAMILIES[fam]
            with open(os.path.join(where, file), encoding="utf-8") as f:
                tmpl = env.from_string(f.read())
            kwargs = {"messages": case["messages"], "add_generation_prompt": case["gen"],
                      "bos_token": bos, "eos_token": eos, "date_string": "26 Jul 2024"}
            if case["tools"]:
                kwargs["tools"] = case.get("tools_list", spec["tools"])
            out = tmpl.render(**kwargs)
            if case["name"] == "cookbook":
                assert out == DOCUMENTED[fam], f"{fam}: differs from Mistral's documented string"
            path = os.path.join(HERE, f"{fam}.{case['name']}.txt")
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(out)
            print(path, len(out), file=sys.stderr)


if __name__ == "__main__":
    main()
