/* Shared between chat.c and chat_tools.c. */
#ifndef ENGINE_CHAT_INTERNAL_H
#define ENGINE_CHAT_INTERNAL_H

/* json (a const cJSON *) as Python's json.dumps(ensure_ascii=False, indent=indent or None)
 * prints it; malloc'd, NULL when out of memory. */
char *chat_py_json(const void *json, int indent);

#endif
