/* JSON Schema and tool lists -> grammars (grammar.h) whose strings are exactly the JSON texts
 * the schema allows, so that sampling under them always yields output that parses and
 * validates.
 *
 * The schema subset is what OpenAI's structured outputs accept in `strict` mode
 * (https://platform.openai.com/docs/guides/structured-outputs, "Supported schemas"): type
 * (string, number, integer, boolean, null, object, array, or a list of them), properties,
 * required, additionalProperties (false, or absent), items, enum, const, anyOf (and oneOf,
 * treated as anyOf), $ref to "#", "#/$defs/NAME" or "#/definitions/NAME" (recursion allowed: a
 * rule may refer to itself once something has been consumed), plus minItems/maxItems and
 * minLength/maxLength as bounds. Annotations (description, title, default, examples, $schema,
 * $id, $comment, strict, format) are ignored. Any other keyword (pattern, minimum, ...) is an
 * error naming it and where, never silently dropped: the output would not honour it.
 *
 * Output form: compact JSON with at most one space after ':' and ','; properties in the
 * schema's order; numbers with at most 16 integer and 16 fraction digits. Optional properties
 * (not in required) may be left out. */
#ifndef ENGINE_JSON_SCHEMA_H
#define ENGINE_JSON_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#define ENG_SCHEMA_MAX_DEPTH   32        /* nested schemas (objects in arrays in ...) */
#define ENG_SCHEMA_MAX_ENUM    1024      /* values of one enum, branches of one anyOf */
#define ENG_SCHEMA_MAX_NODES   4096      /* schema objects compiled in all */
#define ENG_SCHEMA_MAX_GRAMMAR (1 << 20) /* bytes of grammar text produced */
#define ENG_SCHEMA_MAX_TEXT    (1 << 20) /* bytes of schema / tool list JSON accepted */
#define ENG_TOOLS_MAX_PARALLEL 8         /* calls in one reply with parallel calls */

/* The grammar of a schema: *ret_text is malloc'd GBNF text (caller frees). -EINVAL with
 * "schema: at PATH: why" in err for malformed JSON, an unsupported keyword or type, a $ref
 * that does not resolve, or a limit exceeded; -ENOMEM. len 0 = strlen. */
int eng_json_schema_grammar(const char *schema, size_t len, char **ret_text, char *err,
                            size_t err_len);

/* Any JSON object (response_format json_object). Static text. */
const char *eng_json_object_grammar(void);

/* How a model family writes a tool call. */
enum eng_tool_syntax {
    /* Qwen2.5/Qwen3 (Hermes): <tool_call>\n{"name": "...", "arguments": {...}}\n</tool_call>,
     * several separated by "\n" */
    ENG_TOOL_SYNTAX_HERMES = 0,
    /* Llama 3.1/3.2: {"name": "...", "parameters": {...}}, one call */
    ENG_TOOL_SYNTAX_LLAMA3,
    /* Mistral: [TOOL_CALLS][{"name": "...", "arguments": {...}}, ...] */
    ENG_TOOL_SYNTAX_MISTRAL,
};

/* The grammar of a tool call: tools is an OpenAI `tools` array
 * ([{"type": "function", "function": {"name", "description"?, "parameters"?}}]). only_name
 * non-NULL: a call of that function (tool_choice naming one), else of any of them
 * (tool_choice "required"). parallel: one or more calls, where the syntax allows several.
 * Arguments follow each function's parameters schema (absent: any object). Errors as
 * eng_json_schema_grammar, with "tools[i]" in the path, and for an unknown only_name. */
int eng_tools_grammar(const char *tools, size_t len, const char *only_name,
                      enum eng_tool_syntax syntax, bool parallel, char **ret_text, char *err,
                      size_t err_len);

#endif
