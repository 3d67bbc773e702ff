/* The model directory ([models] dir): every *.gguf file in it or below it is an installed model,
 * named by its path below the directory without ".gguf" ("stories260K", "qwen/qwen3-0.6b-q8_0"),
 * plus optional aliases from the configuration and the [engine] model file when it lies
 * elsewhere. Each file's header is read once (eng_model_probe: metadata, tokenizer, tensor
 * descriptions; no weights) and remembered until its size or modification time changes; a file
 * the probe refuses is listed as broken with the loader's message. Hidden files and
 * directories are skipped (ember pull writes its partial downloads as hidden files), so no
 * reader ever sees a half-written model. Thread-safe: the HTTP threads look models up while the
 * worker loads them and the CLI lists them. */
#ifndef AGENT_MODELS_REGISTRY_H
#define AGENT_MODELS_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

#define AGENT_MODEL_ID_MAX   128
#define AGENT_MODEL_PATH_MAX 4096

struct agent_models;

struct agent_model_entry {
    char id[AGENT_MODEL_ID_MAX];
    char path[AGENT_MODEL_PATH_MAX];
    bool ok;                    /* the header was read; else error says why */
    char error[512];            /* the loader's message for a broken file */
    struct eng_model_info info; /* valid when ok */
    uint64_t file_bytes;
    int64_t mtime_s; /* wall seconds: the "created" of the OpenAI model object */
    bool outside;    /* the [engine] model, not in the directory */
    bool engine;     /* the [engine] model (kept loaded by the agent) */
};

/* dir may be "" (no directory). aliases: "NAME=ID NAME=ID" (empty: none); -EINVAL with a
 * message when malformed. Nothing is read until agent_models_scan. */
int agent_models_new(const char *dir, const char *aliases, struct agent_models **ret, char *err,
                     size_t err_len);
void agent_models_free(struct agent_models *m);

/* Adds the [engine] model file under id; rescans keep it. When the file lies in the directory,
 * its entry takes this id and its directory id becomes an alias. */
int agent_models_add_file(struct agent_models *m, const char *path, const char *id);

/* Re-reads the directory: new files are probed, vanished ones dropped, changed ones probed
 * again. 0, or -errno when the directory cannot be read (err says so; -ENOENT when it does not
 * exist, which leaves an empty list). */
int agent_models_scan(struct agent_models *m, char *err, size_t err_len);

/* How many models are listed, and a copy of the i-th (sorted by id). -ENOENT past the end. */
size_t agent_models_count(struct agent_models *m);
int agent_models_get(struct agent_models *m, size_t i, struct agent_model_entry *ret);

/* The model a name means: an id or an alias. 0, or -ENOENT. */
int agent_models_find(struct agent_models *m, const char *name, struct agent_model_entry *ret);

/* The aliases naming id, space-separated, into buf ("" when none). */
void agent_models_aliases_of(struct agent_models *m, const char *id, char *buf, size_t len);

/* The directory ("" when none). */
const char *agent_models_dir(const struct agent_models *m);

/* The id a file would get from its path below the directory: without ".gguf". */
void agent_models_id_from_rel(const char *rel, char *id, size_t id_len);

/* ---- from the configuration ---- */
struct agent_config;

/* The id the [engine] model is served under: [api] model_name, else its file name without
 * ".gguf" ("" when no model is configured). */
void agent_models_engine_id(const struct agent_config *cfg, char *id, size_t id_len);

/* A registry of [models] dir and aliases plus the [engine] model, scanned once. A directory that
 * does not exist is an empty list (0); other scan problems are written to err and returned. */
int agent_models_open_config(const struct agent_config *cfg, struct agent_models **ret, char *err,
                             size_t err_len);

#endif
