/* LD_PRELOAD shim for power-cut tests: at every fsync/fdatasync of a file under $SHADOW_WATCH,
 * copy that file's whole content to $SHADOW_DIR/<basename>. The shadow directory is then the
 * durable image: what a power cut that loses every unsynced write would leave on disk. A watched
 * file that is unlinked (a committed rollback journal, a WAL removed at close) leaves the image
 * too, or a stale hot journal would be "restored". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int watched(const char *path) {
    const char *watch = getenv("SHADOW_WATCH");
    return watch && getenv("SHADOW_DIR") && strncmp(path, watch, strlen(watch)) == 0;
}

static void shadow(int fd) {
    const char *dir = getenv("SHADOW_DIR");
    char link[64], path[PATH_MAX], tmp[PATH_MAX], dst[PATH_MAX], buf[65536];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return;
    path[n] = 0;
    if (!watched(path)) return;
    const char *base = strrchr(path, '/') + 1;
    snprintf(tmp, sizeof tmp, "%s/.%s.%d", dir, base, getpid());
    snprintf(dst, sizeof dst, "%s/%s", dir, base);
    int in = open(path, O_RDONLY), out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in >= 0 && out >= 0) {
        ssize_t r;
        while ((r = read(in, buf, sizeof buf)) > 0) {
            if (write(out, buf, (size_t)r) != r) break;
        }
        rename(tmp, dst);
    }
    if (in >= 0) close(in);
    if (out >= 0) close(out);
}

typedef int (*sync_fn)(int);

static int synced_then_shadowed(const char *name, sync_fn *real, int fd) {
    if (!*real) *real = (sync_fn)dlsym(RTLD_NEXT, name);
    int rc = (*real)(fd);
    if (rc == 0) shadow(fd);
    return rc;
}

int fsync(int fd) { static sync_fn real; return synced_then_shadowed("fsync", &real, fd); }

int fdatasync(int fd) { static sync_fn real; return synced_then_shadowed("fdatasync", &real, fd); }

int unlink(const char *path) {
    static int (*real)(const char *);
    if (!real) real = (int (*)(const char *))dlsym(RTLD_NEXT, "unlink");
    int rc = real(path);
    if (rc == 0 && path[0] == '/' && watched(path)) {
        char dst[PATH_MAX];
        snprintf(dst, sizeof dst, "%s/%s", getenv("SHADOW_DIR"), strrchr(path, '/') + 1);
        real(dst);
    }
    return rc;
}
