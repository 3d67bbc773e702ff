/* `ember pull`: downloads a GGUF model into the model directory over HTTP(S) with libcurl so that
 * no reader ever sees a half-written model. The file is written under a hidden temporary name
 * (.NAME.part, which the registry skips) and renamed into place only after its size, its SHA-256
 * where the source publishes one (the --sha256 given, Hugging Face's X-Linked-Etag, or a
 * URL.sha256 sidecar) and its GGUF header check out. An interrupted download resumes with an
 * HTTP Range request (guarded by If-Range with the server's validator, so a file that changed
 * meanwhile starts over); a file already installed with the same size and hash is skipped. Free
 * disk space is checked before anything is written. */
#ifndef AGENT_MODELS_PULL_H
#define AGENT_MODELS_PULL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct agent_pull_params {
    const char *source;      /* https://.../FILE.gguf, or hf:OWNER/REPO/FILE.gguf */
    const char *dir;         /* the model directory (created when missing) */
    const char *name;        /* file name in dir (may hold subdirectories); NULL: the URL's */
    const char *hf_endpoint; /* NULL: $HF_ENDPOINT, else https://huggingface.co */
    const char *sha256;      /* expected hash (64 hex digits) or NULL */
    bool force;              /* replace an installed file that differs */
    unsigned retries;        /* attempts after a broken transfer, each resuming (default 3) */
    long stall_timeout_s;    /* a transfer that moves no byte this long is broken (0: 60) */
    /* Progress of the transfer (done includes what an earlier attempt left); total 0 when the
     * server did not say. NULL: none. */
    void (*progress)(void *user, uint64_t done, uint64_t total);
    /* What is happening, one line at a time ("resuming at ...", "verifying ..."). May be NULL. */
    void (*note)(void *user, const char *line);
    void *user;
};

struct agent_pull_result {
    char path[4096]; /* the installed file */
    char id[256];    /* its model id */
    uint64_t bytes;
    bool skipped;              /* it was installed already (same size and hash) */
    uint64_t resumed_from;     /* bytes an earlier attempt had left (0: from the start) */
    char sha256[65];           /* of the installed file */
    const char *sha256_source; /* "--sha256", "X-Linked-Etag", "sidecar", or NULL: none */
};

/* 0, or -errno with err saying what and where: -ENOENT (HTTP 404), -ENOSPC (not enough disk),
 * -EBADMSG (size or SHA-256 mismatch), -EINVAL (not a GGUF model, bad source or name), -EEXIST
 * (a different file is installed under that name and force is off), -EIO (transfer failed;
 * what arrived is kept for the next pull to resume). */
int agent_pull(const struct agent_pull_params *p, struct agent_pull_result *ret, char *err,
               size_t err_len);

/* The URL and file name a source means (hf: expanded); -EINVAL for a malformed source. */
int agent_pull_resolve(const char *source, const char *hf_endpoint, char *url, size_t url_len,
                       char *name, size_t name_len, char *err, size_t err_len);

#endif
