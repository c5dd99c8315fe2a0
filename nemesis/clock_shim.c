/* The clock nemesis's shim: LD_PRELOAD it into a process to add an offset to its wall clock, and only that.
 *
 * It interposes clock_gettime (CLOCK_REALTIME and CLOCK_REALTIME_COARSE only), gettimeofday and time. The offset
 * is a signed 64-bit count of nanoseconds (native byte order) in the file named by RAFTKV_CLOCK_FILE, mapped
 * MAP_SHARED at load: the controller rewrites those 8 bytes in place and the next call sees the new offset.
 * Monotonic clocks, sleeps and timeouts are never touched (libfaketime's way of faking them hangs Python 3.11:
 * FAULTS.md). Without the variable, or when the file cannot be mapped, the offset is 0. The file must stay 8
 * bytes long (it is only ever overwritten in place): a shorter file would fault on access.
 *
 * Built by nemesis/clock.py: gcc -O2 -shared -fPIC -o raftkv-clock.so clock_shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int (*real_clock_gettime)(clockid_t, struct timespec *);
static volatile const int64_t *offset_ns;

static void shim_init(void) __attribute__((constructor));

static void shim_init(void) {
    if (!real_clock_gettime)
        real_clock_gettime = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    if (offset_ns)
        return;
    const char *path = getenv("RAFTKV_CLOCK_FILE");
    if (!path)
        return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size >= (off_t)sizeof(int64_t)) {
        void *p = mmap(NULL, sizeof(int64_t), PROT_READ, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED)
            offset_ns = (volatile const int64_t *)p;
    }
    close(fd);
}

static int64_t shim_offset(void) { return offset_ns ? *offset_ns : 0; }

static void shift(struct timespec *ts, int64_t off) {
    int64_t ns = (int64_t)ts->tv_nsec + off % 1000000000LL;
    int64_t s = (int64_t)ts->tv_sec + off / 1000000000LL;
    if (ns < 0) { ns += 1000000000LL; s -= 1; }
    else if (ns >= 1000000000LL) { ns -= 1000000000LL; s += 1; }
    ts->tv_sec = (time_t)s;
    ts->tv_nsec = (long)ns;
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
    if (!real_clock_gettime)
        shim_init();
    int rc = real_clock_gettime(clock, ts);
    if (rc == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE))
        shift(ts, shim_offset());
    return rc;
}

int gettimeofday(struct timeval *tv, void *tz) {
    (void)tz;
    struct timespec ts;
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    if (rc == 0) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return rc;
}

time_t time(time_t *out) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return (time_t)-1;
    if (out)
        *out = ts.tv_sec;
    return ts.tv_sec;
}
