/* `ember tokenize` end to end: runs the built ember binary on vocab-only GGUFs with test texts
 * from shared/vectors/tokenizer written to a temp file on stdin, and compares its one output line
 * with the .out reference; also --special on the Qwen3 ChatML cases, --pieces, BOS handling,
 * --help and the exit codes for bad usage and a missing model. */
#include "ember_test.h"

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *ember = EMBER_TEST_EMBER; /* the binary, or its emulator wrapper */
static char tmp_in[256], tmp_out[256];

static char *read_all(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf)
        buf[n] = 0;
    if (ret_len)
        *ret_len = buf ? (size_t)n : 0;
    return buf;
}

/* Runs `ember tokenize ARGS < text` and returns the exit status; stdout in *ret_out. */
static int run(const char *args, const char *text, size_t len, char **ret_out)
{
    FILE *f = fopen(tmp_in, "wb");
    if (!f)
        return -1;
    fwrite(text, 1, len, f);
    fclose(f);
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "'%s' tokenize %s < '%s' > '%s' 2>/dev/null", ember, args, tmp_in,
             tmp_out);
    int st = system(cmd);
    if (ret_out)
        *ret_out = read_all(tmp_out, NULL);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Checks the first max_cases cases of a vocabulary's .inp/.out through the CLI. */
static void check_vocab(const char *vocab, const char *suffix, const char *flags, int max_cases)
{
    static const char sep[] = "\n__ggml_vocab_test__\n";
    char path[4096], args[4608];
    snprintf(path, sizeof(path), "%s/vectors/tokenizer/%s%s.inp", et_shared_dir(), vocab, suffix);
    char *inp = read_all(path, NULL);
    snprintf(path, sizeof(path), "%s/vectors/tokenizer/%s%s.out", et_shared_dir(), vocab, suffix);
    char *outf = read_all(path, NULL);
    CHECK_MSG(inp && outf, "reading the %s%s test files", vocab, suffix);
    if (!inp || !outf)
        goto done;
    snprintf(args, sizeof(args), "-m '%s/vectors/tokenizer/%s' %s", et_shared_dir(), vocab, flags);
    char *p = inp, *op = outf;
    for (int i = 0; i < max_cases; i++) {
        char *end = strstr(p, sep);
        char *eol = strchr(op, '\n');
        if (!end || !eol)
            break;
        /* the reference line is " id id ..."; ember prints "id id ...\n" */
        *eol = 0;
        char *out = NULL;
        int rc = run(args, p, (size_t)(end - p), &out);
        CHECK_EQ_INT(rc, 0);
        if (out) {
            size_t n = strlen(out);
            if (n && out[n - 1] == '\n')
                out[n - 1] = 0;
        }
        const char *want = op[0] == ' ' ? op + 1 : op;
        CHECK_MSG(out && !strcmp(out, want), "%s case %d: got \"%s\", expected \"%s\"", vocab, i,
                  out ? out : "(none)", want);
        free(out);
        p = end + strlen(sep);
        op = eol + 1;
    }
done:
    free(inp);
    free(outf);
}

int main(void)
{
    struct stat st;
    if (stat(ember, &st) != 0) {
        fprintf(stderr, "%s is not built\n", ember);
        return 1;
    }
    snprintf(tmp_in, sizeof(tmp_in), "%s/cli_tokenize_%d.in", EMBER_BINARY_DIR, (int)getpid());
    snprintf(tmp_out, sizeof(tmp_out), "%s/cli_tokenize_%d.out", EMBER_BINARY_DIR, (int)getpid());

    check_vocab("ggml-vocab-gpt-2.gguf", "", "--no-bos", 8);
    check_vocab("ggml-vocab-llama-spm.gguf", "", "--no-bos", 8);
    check_vocab("ggml-vocab-qwen3.gguf", "", "--no-bos", 8);
    check_vocab("ggml-vocab-qwen3.gguf", ".special", "--no-bos --special", 8);

    char model[4096], args[4608], *out = NULL;
    snprintf(model, sizeof(model), "%s/vectors/tokenizer/ggml-vocab-llama-spm.gguf",
             et_shared_dir());
    /* BOS by default for llama-spm (add_bos_token true) */
    snprintf(args, sizeof(args), "-m '%s'", model);
    CHECK_EQ_INT(run(args, "Hello world", 11, &out), 0);
    CHECK_STR(out, "1 15043 3186\n");
    free(out);
    /* pieces: one line per token, the piece quoted */
    snprintf(args, sizeof(args), "-m '%s' --pieces", model);
    CHECK_EQ_INT(run(args, "Hello\n", 6, &out), 0);
    CHECK_STR(out, "1 '<s>'\n15043 ' Hello'\n13 '\\n'\n");
    free(out);

    CHECK_EQ_INT(run("--help", "", 0, &out), 0);
    CHECK_CONTAINS(out, "usage: ember tokenize");
    free(out);
    snprintf(args, sizeof(args), "-m '%s' --bogus", model);
    CHECK_EQ_INT(run(args, "x", 1, NULL), 2);
    CHECK_EQ_INT(run("-m /nonexistent/model.gguf", "x", 1, NULL), 1);
    snprintf(args, sizeof(args), "-m '%s' extra-argument", model);
    CHECK_EQ_INT(run(args, "x", 1, NULL), 2);

    remove(tmp_in);
    remove(tmp_out);
    return et_finish();
}
