/* `ember pull` (see pull.h): one HEAD to learn the size and validators (following redirects, so a
 * Hugging Face 302's X-Linked-Etag/X-Linked-Size are seen), an optional .sha256 sidecar, then
 * GET attempts that append to the hidden partial file, each resuming where the last stopped, and
 * finally size, SHA-256 and GGUF checks before the rename. */
#include "pull.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "engine/engine.h"
#include "registry.h"

#define DISK_MARGIN_BYTES (16u << 20) /* left free beyond the file, for the rest of the system */
#define SIDECAR_MAX       4096

static void note(const struct agent_pull_params *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note(const struct agent_pull_params *p, const char *fmt, ...)
{
    if (!p->note)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    p->note(p->user, line);
}

static bool is_hex64(const char *s, size_t n)
{
    if (n != 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* ---- the source ---- */

static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n < 6 || n >= 256 || strcasecmp(name + n - 5, ".gguf") != 0)
        return false;
    /* every component a plain, visible name: no "..", no hidden files, no absolute path */
    const char *c = name;
    while (*c) {
        size_t len = strcspn(c, "/");
        if (len == 0 || c[0] == '.')
            return false;
        for (size_t i = 0; i < len; i++)
            if (!isalnum((unsigned char)c[i]) && !strchr("._-+", c[i]))
                return false;
        c += len;
        if (*c == '/')
            c++;
    }
    return name[n - 1] != '/';
}

int agent_pull_resolve(const char *source, const char *hf_endpoint, char *url, size_t url_len,
                       char *name, size_t name_len, char *err, size_t err_len)
{
    if (strncmp(source, "hf:", 3) == 0) {
        /* hf:OWNER/REPO/PATH/IN/REPO.gguf -> ENDPOINT/OWNER/REPO/resolve/main/PATH/IN/REPO.gguf */
        const char *p = source + 3;
        const char *s1 = strchr(p, '/');
        const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
        if (!s1 || !s2 || s1 == p || s2 == s1 + 1 || !s2[1]) {
            snprintf(err, err_len, "%s: expected hf:OWNER/REPO/FILE.gguf", source);
            return -EINVAL;
        }
        for (const char *c = p; *c; c++)
            if (!isalnum((unsigned char)*c) && !strchr("._-/", *c)) {
                snprintf(err, err_len, "%s: '%c' is not allowed in a Hugging Face path", source,
                         *c);
                return -EINVAL;
            }
        if (!hf_endpoint || !hf_endpoint[0])
            hf_endpoint = getenv("HF_ENDPOINT");
        if (!hf_endpoint || !hf_endpoint[0])
            hf_endpoint = "https://huggingface.co";
        size_t ep = strlen(hf_endpoint);
        while (ep > 0 && hf_endpoint[ep - 1] == '/')
            ep--;
        int n = snprintf(url, url_len, "%.*s/%.*s/resolve/main/%s", (int)ep, hf_endpoint,
                         (int)(s2 - p), p, s2 + 1);
        if (n < 0 || (size_t)n >= url_len) {
            snprintf(err, err_len, "%s: too long", source);
            return -EINVAL;
        }
    } else if (strncmp(source, "https://", 8) == 0 || strncmp(source, "http://", 7) == 0) {
        if (strlen(source) >= url_len) {
            snprintf(err, err_len, "%s: too long", source);
            return -EINVAL;
        }
        snprintf(url, url_len, "%s", source);
    } else {
        snprintf(err, err_len, "%s: expected an http(s):// URL or hf:OWNER/REPO/FILE.gguf", source);
        return -EINVAL;
    }
    /* the file name: the last path segment, without query or fragment */
    const char *path = strstr(url, "://");
    path = path ? strchr(path + 3, '/') : NULL;
    size_t plen = path ? strcspn(path, "?#") : 0;
    const char *base = path;
    for (size_t i = 0; i < plen; i++)
        if (path[i] == '/')
            base = path + i + 1;
    size_t blen = path ? plen - (size_t)(base - path) : 0;
    if (blen == 0 || blen >= name_len) {
        snprintf(err, err_len, "%s: the URL names no file; give --name NAME.gguf", source);
        return -EINVAL;
    }
    snprintf(name, name_len, "%.*s", (int)blen, base);
    return 0;
}

/* ---- HTTP ---- */

/* What the headers of a response chain said (redirects included: HF puts the hash on its 302). */
struct head_info {
    long status;
    uint64_t length; /* of the last response, 0 unknown */
    bool has_length;
    char etag[128]; /* of the last response */
    char last_modified[64];
    char linked_etag[128]; /* X-Linked-Etag, from any response of the chain */
    uint64_t linked_size;
    uint64_t range_start; /* Content-Range: bytes START-... */
    bool has_range;
};

static void trim_copy(char *dst, size_t cap, const char *v, size_t n)
{
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t on_header(char *buf, size_t size, size_t n, void *user)
{
    struct head_info *h = user;
    size_t len = size * n;
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) { /* a new response of the chain */
        h->has_length = false;
        h->length = 0;
        h->etag[0] = h->last_modified[0] = '\0';
        h->has_range = false;
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon)
        return len;
    size_t klen = (size_t)(colon - buf);
    const char *v = colon + 1;
    size_t vlen = len - klen - 1;
    char val[160];
    trim_copy(val, sizeof(val), v, vlen);
    if (klen == 14 && strncasecmp(buf, "Content-Length", 14) == 0) {
        h->length = strtoull(val, NULL, 10);
        h->has_length = true;
    } else if (klen == 4 && strncasecmp(buf, "ETag", 4) == 0) {
        snprintf(h->etag, sizeof(h->etag), "%s", val);
    } else if (klen == 13 && strncasecmp(buf, "Last-Modified", 13) == 0) {
        snprintf(h->last_modified, sizeof(h->last_modified), "%s", val);
    } else if (klen == 13 && strncasecmp(buf, "X-Linked-Etag", 13) == 0) {
        snprintf(h->linked_etag, sizeof(h->linked_etag), "%s", val);
    } else if (klen == 13 && strncasecmp(buf, "X-Linked-Size", 13) == 0) {
        h->linked_size = strtoull(val, NULL, 10);
    } else if (klen == 13 && strncasecmp(buf, "Content-Range", 13) == 0) {
        const char *b = strstr(val, "bytes ");
        if (b) {
            h->range_start = strtoull(b + 6, NULL, 10);
            h->has_range = true;
        }
    }
    return len;
}

static CURL *easy_for(const struct agent_pull_params *p, const char *url)
{
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, p->stall_timeout_s > 0 ? p->stall_timeout_s : 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "ember-pull/" EMBER_VERSION);
    return c;
}

/* HEAD: status, size and validators. */
static int head(const struct agent_pull_params *p, const char *url, struct head_info *h, char *err,
                size_t err_len)
{
    memset(h, 0, sizeof(*h));
    CURL *c = easy_for(p, url);
    if (!c)
        return -ENOMEM;
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &h->status);
    curl_easy_cleanup(c);
    if (cc != CURLE_OK) {
        snprintf(err, err_len, "%s: %s", url, curl_easy_strerror(cc));
        return -EIO;
    }
    return 0;
}

struct sidecar {
    char data[SIDECAR_MAX];
    size_t len;
};

static size_t on_sidecar(char *buf, size_t size, size_t n, void *user)
{
    struct sidecar *s = user;
    size_t len = size * n;
    if (s->len + len >= sizeof(s->data))
        return 0; /* not a checksum file */
    memcpy(s->data + s->len, buf, len);
    s->len += len;
    s->data[s->len] = '\0';
    return len;
}

/* URL.sha256 ("HASH" or "HASH  FILE", as sha256sum writes): the hash, or "" when absent. */
static void fetch_sidecar(const struct agent_pull_params *p, const char *url, char *hash)
{
    hash[0] = '\0';
    char side[4200];
    size_t q = strcspn(url, "?#");
    if (snprintf(side, sizeof(side), "%.*s.sha256%s", (int)q, url, url + q) >= (int)sizeof(side))
        return;
    CURL *c = easy_for(p, side);
    if (!c)
        return;
    struct sidecar s = {.len = 0};
    s.data[0] = '\0';
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_sidecar);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK &&
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200) {
        size_t n = strcspn(s.data, " \t\r\n");
        if (is_hex64(s.data, n)) {
            for (size_t i = 0; i < 64; i++)
                hash[i] = (char)tolower((unsigned char)s.data[i]);
            hash[64] = '\0';
        }
    }
    curl_easy_cleanup(c);
}

/* ---- the transfer ---- */

struct transfer {
    const struct agent_pull_params *p;
    CURL *c;
    FILE *out;
    uint64_t offset;  /* bytes in the file before this attempt's first byte */
    uint64_t written; /* by this attempt */
    uint64_t total;   /* the whole file, 0 unknown */
    struct head_info h;
    bool started, refused;
    long status;
    int write_errno;
};

static size_t on_data(char *buf, size_t size, size_t n, void *user)
{
    struct transfer *t = user;
    size_t len = size * n;
    if (!t->started) {
        t->started = true;
        curl_easy_getinfo(t->c, CURLINFO_RESPONSE_CODE, &t->status);
        if (t->status == 206 && t->h.has_range && t->h.range_start == t->offset) {
            /* resumes where the file ends */
        } else if (t->status == 200) {
            /* the whole file (the server ignored the range, or If-Range said it changed) */
            if (t->offset)
                note(t->p, "the server sent the whole file; starting over");
            if (ftruncate(fileno(t->out), 0) < 0 || fseek(t->out, 0, SEEK_SET) < 0) {
                t->write_errno = errno;
                return 0;
            }
            t->offset = 0;
        } else {
            t->refused = true;
            return 0;
        }
    }
    if (fwrite(buf, 1, len, t->out) != len) {
        t->write_errno = errno ? errno : EIO;
        return 0;
    }
    t->written += len;
    return len;
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    struct transfer *t = user;
    if (t->p->progress)
        t->p->progress(t->p->user, t->offset + t->written, t->total);
    return 0;
}

/* One GET from offset (a Range request when offset > 0). 0: the body arrived whole. */
static int fetch(struct transfer *t, const char *url, const char *validator, char *err,
                 size_t err_len)
{
    t->c = easy_for(t->p, url);
    if (!t->c)
        return -ENOMEM;
    struct curl_slist *hdr = NULL;
    char if_range[192];
    if (t->offset && validator && validator[0]) {
        snprintf(if_range, sizeof(if_range), "If-Range: %s", validator);
        hdr = curl_slist_append(hdr, if_range);
    }
    curl_easy_setopt(t->c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(t->c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)t->offset);
    curl_easy_setopt(t->c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(t->c, CURLOPT_HEADERDATA, &t->h);
    curl_easy_setopt(t->c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(t->c, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(t->c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(t->c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(t->c, CURLOPT_XFERINFODATA, t);
    t->started = t->refused = false;
    t->written = 0;
    t->write_errno = 0;
    memset(&t->h, 0, sizeof(t->h));
    CURLcode cc = curl_easy_perform(t->c);
    long status = t->status;
    if (!t->started)
        curl_easy_getinfo(t->c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(t->c);
    t->c = NULL;
    if (fflush(t->out) != 0 && !t->write_errno)
        t->write_errno = errno;
    if (t->write_errno) {
        snprintf(err, err_len, "writing the download: %s", strerror(t->write_errno));
        return -t->write_errno;
    }
    if (t->refused || (cc == CURLE_OK && !t->started && status >= 300)) {
        if (status == 416 && t->total && t->offset == t->total)
            return 0; /* nothing left to fetch */
        snprintf(err, err_len, "%s: HTTP %ld", url, status);
        return status == 404 || status == 410 ? -ENOENT : -EIO;
    }
    if (cc != CURLE_OK) {
        snprintf(err, err_len, "%s: %s after %llu bytes", url, curl_easy_strerror(cc),
                 (unsigned long long)t->offset + t->written);
        return -EIO;
    }
    return 0;
}

/* ---- checks ---- */

static int file_sha256(const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *buf = malloc(1 << 16);
    int rc = ctx && buf && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 ? 0 : -ENOMEM;
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, 1 << 16, f)) > 0)
        if (EVP_DigestUpdate(ctx, buf, n) != 1)
            rc = -EIO;
    if (rc == 0 && ferror(f))
        rc = -EIO;
    unsigned char md[32];
    unsigned int len = 0;
    if (rc == 0 && EVP_DigestFinal_ex(ctx, md, &len) != 1)
        rc = -EIO;
    EVP_MD_CTX_free(ctx);
    free(buf);
    fclose(f);
    if (rc == 0)
        for (unsigned i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return rc;
}

/* Makes every directory of path's parent (0755). */
static int make_parents(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *s = buf + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    return 0;
}

static void sync_dir_of(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return;
    *slash = '\0';
    int fd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* The partial file's record of what it is part of: "url\nvalidator\nsize\n". */
static void write_meta(const char *meta, const char *url, const char *validator, uint64_t total)
{
    FILE *f = fopen(meta, "w");
    if (!f)
        return;
    fprintf(f, "%s\n%s\n%llu\n", url, validator, (unsigned long long)total);
    fclose(f);
}

static bool meta_matches(const char *meta, const char *url, const char *validator, uint64_t total)
{
    char want[8192], have[8192];
    snprintf(want, sizeof(want), "%s\n%s\n%llu\n", url, validator, (unsigned long long)total);
    FILE *f = fopen(meta, "r");
    if (!f)
        return false;
    size_t n = fread(have, 1, sizeof(have) - 1, f);
    have[n] = '\0';
    fclose(f);
    return strcmp(want, have) == 0;
}

int agent_pull(const struct agent_pull_params *p, struct agent_pull_result *ret, char *err,
               size_t err_len)
{
    memset(ret, 0, sizeof(*ret));
    char url[4096], name[256];
    int rc = agent_pull_resolve(p->source, p->hf_endpoint, url, sizeof(url), name, sizeof(name),
                                err, err_len);
    if (rc < 0)
        return rc;
    if (p->name) {
        if (strlen(p->name) >= sizeof(name)) {
            snprintf(err, err_len, "--name: too long");
            return -EINVAL;
        }
        snprintf(name, sizeof(name), "%s", p->name);
    }
    if (!name_ok(name)) {
        snprintf(err, err_len,
                 "'%s' is not a model file name: it must end in .gguf and use only letters, "
                 "digits and . _ - + (give --name NAME.gguf)",
                 name);
        return -EINVAL;
    }
    char final[4096], part[4200], meta[4300];
    snprintf(final, sizeof(final), "%s/%s", p->dir, name);
    const char *slash = strrchr(name, '/');
    if (snprintf(part, sizeof(part), "%s/%.*s.%s.part", p->dir, slash ? (int)(slash - name + 1) : 0,
                 name, slash ? slash + 1 : name) >= (int)sizeof(part)) {
        snprintf(err, err_len, "%s: path too long", p->dir);
        return -ENAMETOOLONG;
    }
    snprintf(meta, sizeof(meta), "%s.meta", part);
    agent_models_id_from_rel(name, ret->id, sizeof(ret->id));
    snprintf(ret->path, sizeof(ret->path), "%s", final);

    /* what the server says the file is */
    struct head_info h;
    rc = head(p, url, &h, err, err_len);
    if (rc < 0)
        return rc;
    if (h.status == 404 || h.status == 410) {
        snprintf(err, err_len, "%s: HTTP %ld: no such file", url, h.status);
        return -ENOENT;
    }
    if (h.status >= 400 && h.status != 405 &&
        h.status != 501) { /* HEAD not allowed: GET will say */
        snprintf(err, err_len, "%s: HTTP %ld", url, h.status);
        return -EIO;
    }
    uint64_t total = h.has_length ? h.length : 0;
    if (h.linked_size)
        total = h.linked_size;
    /* the validator If-Range carries: a strong ETag, else Last-Modified */
    char validator[160] = "";
    if (h.etag[0] && strncmp(h.etag, "W/", 2) != 0)
        snprintf(validator, sizeof(validator), "%s", h.etag);
    else if (h.last_modified[0])
        snprintf(validator, sizeof(validator), "%s", h.last_modified);

    char want_sha[65] = "";
    if (p->sha256) {
        if (!is_hex64(p->sha256, strlen(p->sha256))) {
            snprintf(err, err_len, "--sha256: expected 64 hexadecimal digits");
            return -EINVAL;
        }
        for (size_t i = 0; i < 64; i++)
            want_sha[i] = (char)tolower((unsigned char)p->sha256[i]);
        ret->sha256_source = "--sha256";
    } else {
        const char *le = h.linked_etag;
        size_t n = strlen(le);
        if (n == 66 && le[0] == '"' && le[65] == '"') {
            le++;
            n -= 2;
        }
        if (is_hex64(le, n)) {
            for (size_t i = 0; i < 64; i++)
                want_sha[i] = (char)tolower((unsigned char)le[i]);
            ret->sha256_source = "X-Linked-Etag";
        } else {
            fetch_sidecar(p, url, want_sha);
            if (want_sha[0])
                ret->sha256_source = "sidecar";
        }
    }

    /* installed already? */
    struct stat st;
    if (stat(final, &st) == 0) {
        bool same = !total || (uint64_t)st.st_size == total;
        char have[65] = "";
        if (same && want_sha[0]) {
            note(p, "%s exists; checking its SHA-256", final);
            same = file_sha256(final, have) == 0 && strcmp(have, want_sha) == 0;
        }
        if (same) {
            ret->skipped = true;
            ret->bytes = (uint64_t)st.st_size;
            snprintf(ret->sha256, sizeof(ret->sha256), "%s", have);
            return 0;
        }
        if (!p->force) {
            snprintf(err, err_len,
                     "%s is installed and differs from %s (pull --force replaces it, or "
                     "`ember models rm %s`)",
                     final, url, ret->id);
            return -EEXIST;
        }
    }

    rc = make_parents(part);
    if (rc < 0) {
        snprintf(err, err_len, "%s: %s", p->dir, strerror(-rc));
        return rc;
    }
    /* resume only a partial file of this very version */
    uint64_t offset = 0;
    if (stat(part, &st) == 0) {
        if (meta_matches(meta, url, validator, total) && (!total || (uint64_t)st.st_size <= total))
            offset = (uint64_t)st.st_size;
        else
            note(p, "a partial download of another version was found; starting over");
    }
    if (total) {
        struct statvfs vfs;
        if (statvfs(p->dir, &vfs) == 0) {
            uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
            uint64_t need = total - offset + DISK_MARGIN_BYTES;
            if (avail < need) {
                snprintf(err, err_len,
                         "%s: %.1f MB free, the download needs %.1f MB (and %u MB to spare)",
                         p->dir, (double)avail / 1e6, (double)(total - offset) / 1e6,
                         DISK_MARGIN_BYTES >> 20);
                return -ENOSPC;
            }
        }
    } else {
        note(p, "the server did not say how large the file is; free space was not checked");
    }
    FILE *out = fopen(part, offset ? "r+b" : "wb");
    if (!out) {
        snprintf(err, err_len, "%s: %s", part, strerror(errno));
        return -errno;
    }
    if (offset && fseeko(out, (off_t)offset, SEEK_SET) < 0) {
        offset = 0;
        rewind(out);
    }
    write_meta(meta, url, validator, total);
    ret->resumed_from = offset;
    if (offset)
        note(p, "resuming at %llu of %llu bytes", (unsigned long long)offset,
             (unsigned long long)total);
    struct transfer t = {.p = p, .out = out, .offset = offset, .total = total};
    unsigned attempts = 1 + p->retries;
    for (unsigned a = 0; a < attempts; a++) {
        if (total && t.offset == total)
            break; /* complete already */
        rc = fetch(&t, url, validator, err, err_len);
        t.offset += t.written;
        if (rc == 0 || rc == -ENOENT || t.refused || t.write_errno)
            break;
        if (a + 1 < attempts)
            note(p, "%s; resuming at %llu bytes", err, (unsigned long long)t.offset);
    }
    if (fsync(fileno(out)) < 0 && rc == 0) {
        snprintf(err, err_len, "%s: %s", part, strerror(errno));
        rc = -errno;
    }
    fclose(out);
    if (rc < 0) {
        if (rc == -ENOENT) {
            unlink(part);
            unlink(meta);
        }
        return rc; /* what arrived stays for the next pull to resume */
    }
    if (stat(part, &st) < 0) {
        snprintf(err, err_len, "%s: %s", part, strerror(errno));
        return -errno;
    }
    ret->bytes = (uint64_t)st.st_size;
    if (total && ret->bytes != total) {
        snprintf(err, err_len, "%s: %llu bytes arrived, the server announced %llu; removed", url,
                 (unsigned long long)ret->bytes, (unsigned long long)total);
        unlink(part);
        unlink(meta);
        return -EBADMSG;
    }
    note(p, "verifying %s", want_sha[0] ? "SHA-256 and GGUF header" : "GGUF header");
    rc = file_sha256(part, ret->sha256);
    if (rc < 0) {
        snprintf(err, err_len, "%s: %s", part, strerror(-rc));
        return rc;
    }
    if (want_sha[0] && strcmp(ret->sha256, want_sha) != 0) {
        snprintf(err, err_len, "%s: SHA-256 %s, but %s says %s; the download was removed", url,
                 ret->sha256, ret->sha256_source, want_sha);
        unlink(part);
        unlink(meta);
        return -EBADMSG;
    }
    struct eng_model_info info;
    char perr[512];
    rc = eng_model_probe(part, &info, perr, sizeof(perr));
    if (rc < 0) {
        /* name the file the user asked for, not the temporary one */
        const char *why = strstr(perr, ".part: ");
        snprintf(err, err_len, "%s is not a model Ember can load (%s); the download was removed",
                 url, why ? why + 7 : perr);
        unlink(part);
        unlink(meta);
        return -EINVAL;
    }
    if (rename(part, final) < 0) {
        snprintf(err, err_len, "%s: %s", final, strerror(errno));
        return -errno;
    }
    unlink(meta);
    sync_dir_of(final);
    return 0;
}
