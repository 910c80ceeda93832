/*
 * main.c - command line, start-up, signals and shutdown.  No logic of its
 * own: it loads the config, opens the listening sockets (one per worker,
 * SO_REUSEPORT), starts the workers and waits for SIGINT/SIGTERM.
 */
#include <curl/curl.h>
#include <errno.h>
#include <event2/thread.h>
#include <jansson.h>
#include <libssh2.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/log.h"
#include "keypool/keypool.h"
#include "keypool/keystore.h"
#include "server/worker.h"
#include "store/store.h"

#define GB_VERSION "0.1.0"
/* Listen backlog. */
#define GB_LISTEN_BACKLOG 1024

static void usage(FILE *f)
{
    fprintf(f, "usage: gemini-balance [--env-file PATH] [--help] [--version] "
               "[--print-env-example]\n\n"
               "An OpenAI- and Gemini-compatible gateway over a pool of Gemini API keys.\n"
               "Reads ./.env (or --env-file PATH) and the environment; the environment wins.\n\n");
    gb_config_write_help(f);
}

/* Opens a listening socket on host:port with SO_REUSEPORT.  Returns the fd
 * or -1 (with a message logged). */
static int listen_on(const char *host, const char *port)
{
    struct addrinfo hints = {0}, *res = NULL, *ai;
    int fd = -1, one = 1, rc;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        gb_error("cannot resolve HOST %s: %s", host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        /* accepted sockets inherit it: SSE chunks go out at once, not after
         * the client's delayed ACK */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, GB_LISTEN_BACKLOG) == 0)
            break;
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        gb_error("cannot listen on %s:%s: %s", host, port, strerror(errno));
    freeaddrinfo(res);
    return fd;
}

/* Configs replaced by a reload: requests may still read them, so they live
 * until exit (a few KB each). */
struct retired {
    struct gb_config **v;
    size_t n;
};

/* Each client connection is a descriptor (and maybe an upstream one too):
 * take the hard open-files limit, as nginx's worker_rlimit_nofile would. */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            gb_warn("cannot raise the open-files limit: %s", strerror(errno));
    }
}

/* Settings read once at start-up: changing them needs a restart. */
static void warn_fixed(const struct gb_config *a, const struct gb_config *b)
{
    if (strcmp(a->host, b->host) != 0 || a->port != b->port || a->workers != b->workers ||
        strcmp(a->data_dir, b->data_dir) != 0 || a->max_request_bytes != b->max_request_bytes ||
        a->max_header_bytes != b->max_header_bytes ||
        a->check_interval_hours != b->check_interval_hours ||
        strcmp(a->redis_url ? a->redis_url : "", b->redis_url ? b->redis_url : "") != 0)
        gb_warn("reload: HOST, PORT, WORKERS, DATA_DIR, MAX_REQUEST_BYTES, MAX_HEADER_BYTES, "
                "CHECK_INTERVAL_HOURS and REDIS_URL take effect at the next restart");
}

/* SIGHUP: reads .env and the environment again; keys, tokens and settings
 * change without dropping a connection.  A bad file keeps the old config. */
static void reload(struct gb_ctx *ctx, const char *env_file, struct retired *retired)
{
    char err[512];
    struct gb_config *next = gb_config_load(env_file, getenv, err, sizeof err), *old;
    struct gb_config **v;
    size_t changes;

    if (next == NULL) {
        gb_error("reload failed, keeping the current configuration: %s", err);
        return;
    }
    v = realloc(retired->v, (retired->n + 1) * sizeof *v);
    if (v == NULL) {
        gb_config_free(next);
        gb_error("reload failed: out of memory");
        return;
    }
    retired->v = v;
    old = (struct gb_config *)ctx->cfg;
    warn_fixed(old, next);
    gb_log_setup((enum gb_log_level)next->log_level, next->log_json);
    gb_keypool_configure(ctx->pool, next->max_failures, (enum gb_key_strategy)next->key_strategy,
                         next->key_rpm_limit, next->key_rpd_limit);
    gb_cluster_set_limits(ctx->cluster, next->key_rpm_limit, next->key_rpd_limit);
    changes = gb_keypool_sync(ctx->pool, &next->api_keys);
    __atomic_store_n(&ctx->cfg, next, __ATOMIC_RELEASE);
    retired->v[retired->n++] = old;
    pthread_mutex_lock(&ctx->models.lock);
    ctx->models.expires_ms = 0; /* the model list may differ too (SEARCH_MODELS) */
    pthread_mutex_unlock(&ctx->models.lock);
    gb_info("reloaded the configuration: %zu keys (%zu changed), %zu client tokens",
            gb_keypool_size(ctx->pool), changes, next->allowed_tokens.n);
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int main(int argc, char **argv)
{
    const char *env_file = NULL;
    struct gb_config *cfg;
    struct gb_ctx ctx = {0};
    struct gb_keypool_opts pool_opts = {0};
    struct gb_store_opts store_opts = {0};
    struct gb_keystore_fanout fanout = {0};
    struct retired retired = {NULL, 0};
    struct gb_worker *workers = NULL;
    char err[512], portstr[16];
    sigset_t sigs;
    int sig = 0, port, rc = 1;
    long started = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("gemini-balance %s\n", GB_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--print-env-example") == 0) {
            gb_config_write_example(stdout);
            return 0;
        } else if (strcmp(argv[i], "--env-file") == 0 && i + 1 < argc) {
            env_file = argv[++i];
        } else {
            fprintf(stderr, "gemini-balance: unknown argument '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    cfg = gb_config_load(env_file, getenv, err, sizeof err);
    if (cfg == NULL) {
        fprintf(stderr, "gemini-balance: configuration error: %s\n", err);
        return 1;
    }
    ctx.cfg = cfg;
    gb_log_setup((enum gb_log_level)cfg->log_level, cfg->log_json);
    /* libcurl initialises libssh2 (for scp/sftp, which we never use), and
     * libssh2 then initialises all of OpenSSL (linked in, see the Makefile):
     * 1.4 MB of resident pages for nothing.  Taking libssh2's first
     * reference without crypto skips it. */
    libssh2_init(LIBSSH2_INIT_NO_CRYPTO);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || evthread_use_pthreads() != 0) {
        gb_error("cannot initialise libcurl or libevent threads");
        goto out;
    }
    if (!(curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_ASYNCHDNS))
        gb_warn("libcurl resolves names synchronously: DNS lookups will block a worker");
    json_object_seed(0);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();

    /* every thread (store, cluster, workers) inherits the signals blocked,
     * so SIGTERM/SIGHUP reach only main's sigwait, even before it waits */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    ctx.version = GB_VERSION;
    ctx.started_ms = gb_now_ms();
    pthread_mutex_init(&ctx.models.lock, NULL);
    store_opts.data_dir = cfg->data_dir;
    store_opts.request_log_days = (int)cfg->request_log_days;
    store_opts.error_log_days = (int)cfg->error_log_days;
    ctx.store = gb_store_open(&store_opts, err, sizeof err);
    if (ctx.store == NULL) {
        gb_error("cannot open the database in DATA_DIR (%s): %s", cfg->data_dir, err);
        goto out;
    }
    pool_opts.on_change = gb_keystore_on_change;
    pool_opts.ud = ctx.store;
    pool_opts.max_failures = cfg->max_failures;
    pool_opts.strategy = (enum gb_key_strategy)cfg->key_strategy;
    pool_opts.rpm_limit = cfg->key_rpm_limit;
    pool_opts.rpd_limit = cfg->key_rpd_limit;
    ctx.pool = gb_keypool_new(&cfg->api_keys, &pool_opts);
    if (ctx.pool != NULL) {
        int restored = gb_keystore_restore(ctx.store, ctx.pool);
        if (restored > 0)
            gb_info("restored the state of %d keys from %s", restored, cfg->data_dir);
    }
    workers = calloc((size_t)cfg->workers, sizeof *workers);
    if (ctx.pool == NULL || workers == NULL) {
        gb_error("out of memory");
        goto out;
    }
    /* several instances must not all start on the same key */
    gb_keypool_randomize_cursor(ctx.pool);
    if (cfg->redis_url != NULL) {
        ctx.cluster = gb_cluster_start(cfg->redis_url, ctx.pool, err, sizeof err);
        if (ctx.cluster == NULL) {
            gb_error("cannot start the cluster: %s", err);
            goto out;
        }
        gb_cluster_set_limits(ctx.cluster, cfg->key_rpm_limit, cfg->key_rpd_limit);
        fanout.store = ctx.store;
        fanout.next = gb_cluster_on_change;
        fanout.next_ud = ctx.cluster;
        gb_keypool_set_callbacks(ctx.pool, gb_keystore_on_change_fanout, &fanout,
                                 gb_cluster_on_pick, ctx.cluster);
    }

    snprintf(portstr, sizeof portstr, "%ld", cfg->port);
    port = (int)cfg->port;
    for (long i = 0; i < cfg->workers; i++) {
        int fd = listen_on(cfg->host, portstr);
        if (fd < 0)
            goto out;
        if (i == 0) {
            port = bound_port(fd);
            snprintf(portstr, sizeof portstr, "%d", port);
        }
        if (gb_worker_init(&workers[i], (int)i, &ctx, fd) < 0 || gb_worker_start(&workers[i]) < 0)
            goto out;
        started = i + 1;
    }
    gb_info("gemini-balance %s: %ld workers, %zu API keys, %zu client tokens, upstream %s",
            GB_VERSION, cfg->workers, gb_keypool_size(ctx.pool), cfg->allowed_tokens.n,
            cfg->base_url);
    if (gb_keypool_size(ctx.pool) == 0)
        gb_warn("no API keys configured: model calls answer 503 until API_KEYS is set in .env");
    gb_log(GB_LOG_NOTICE, "listening on http://%s:%d", strchr(cfg->host, ':') ? "[::]" : cfg->host,
           port);

    while (sigwait(&sigs, &sig) == 0 && sig != SIGINT && sig != SIGTERM) {
        if (sig == SIGHUP)
            reload(&ctx, env_file, &retired);
    }
    gb_info("signal %d: draining (up to %ld s), then stopping", sig,
            gb_cfg(&ctx)->shutdown_timeout_s);
    rc = 0;
out:
    for (long i = 0; i < started; i++)
        gb_worker_stop(&workers[i]);
    for (long i = 0; i < started; i++)
        gb_worker_join(&workers[i]);
    /* the cluster sends its last changes, then the store writes what is
     * queued, before the pool they mirror goes */
    if (ctx.cluster != NULL && ctx.pool != NULL)
        gb_keypool_set_callbacks(ctx.pool, gb_keystore_on_change, ctx.store, NULL, NULL);
    gb_cluster_stop(ctx.cluster);
    gb_store_close(ctx.store);
    free(workers);
    gb_keypool_free(ctx.pool);
    free(ctx.models.json);
    gb_config_free((struct gb_config *)ctx.cfg);
    for (size_t i = 0; i < retired.n; i++)
        gb_config_free(retired.v[i]);
    free(retired.v);
    curl_global_cleanup();
    if (rc == 0)
        gb_info("stopped");
    return rc;
}
