/* The clock nemesis's shim: LD_PRELOAD it into a process to skew its wall clock and to slow its monotonic clock.
 *
 * It interposes clock_gettime, gettimeofday and time. The file named by RAFTKV_CLOCK_FILE, mapped MAP_SHARED at
 * load, holds two signed 64-bit integers (native byte order) that the controller rewrites in place; the next call
 * sees them:
 *   [0..8)   the wall-clock offset in nanoseconds, added to CLOCK_REALTIME and CLOCK_REALTIME_COARSE;
 *   [8..16)  the monotonic rate in parts per million: CLOCK_MONOTONIC (what Python's time.monotonic, asyncio's loop
 *            and every timer read) advances rate/1e6 seconds per real second. 1000000 (or 0, or anything outside
 *            (0, 1000000]) is true time.
 * A slowed clock is anchored where the rate changes, so it never goes back; when the rate returns to true time it
 * jumps forward to true time at once (as a process resuming from SIGSTOP sees it), so it never runs ahead of the
 * kernel's clock either. Never running ahead matters: Python computes absolute CLOCK_MONOTONIC deadlines for the
 * kernel (sem_clockwait, clock_nanosleep), and a clock behind true time only makes those waits end early, where one
 * ahead would make them last too long. Only slowing is offered, and sleeps are not faked (libfaketime's way of faking
 * them hangs Python 3.11: FAULTS.md): a process on a slow clock sees its timers fire late, as a process whose
 * oscillator drifts or whose VM is starved does.
 * Without the variable, or when the file cannot be mapped, both are true time; a file of 8 bytes (the shim before
 * the rate) leaves the rate true. The file must keep its length (it is only ever overwritten in place): a shorter
 * file would fault on access.
 *
 * Built by nemesis/clock.py: gcc -O2 -shared -fPIC -o raftkv-clock.so clock_shim.c -ldl -lpthread
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int (*real_clock_gettime)(clockid_t, struct timespec *);
static volatile const int64_t *offset_ns;
static volatile const int64_t *rate_ppm; /* NULL when the file holds no rate */

#define PPM 1000000LL

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
        size_t len = st.st_size >= (off_t)(2 * sizeof(int64_t)) ? 2 * sizeof(int64_t) : sizeof(int64_t);
        void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) {
            if (len == 2 * sizeof(int64_t))
                rate_ppm = (volatile const int64_t *)p + 1;
            offset_ns = (volatile const int64_t *)p;
        }
    }
    close(fd);
}

static int64_t shim_offset(void) { return offset_ns ? *offset_ns : 0; }

static int64_t shim_rate(void) {
    int64_t r = rate_ppm ? *rate_ppm : PPM;
    return (r > 0 && r < PPM) ? r : PPM;
}

/* The slowed monotonic clock of this process: anchored at the last rate change, never behind a value it returned,
 * never ahead of the kernel's clock. One lock, taken only while a slow rate is or was just in force. */
static pthread_mutex_t mono_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t seen_rate = PPM, anchor_real, anchor_fake, last_fake;

static int64_t slowed(int64_t real) {
    int64_t rate = shim_rate();
    if (rate == PPM && __atomic_load_n(&seen_rate, __ATOMIC_ACQUIRE) == PPM)
        return real; /* the fast path: true time, and it was true time before */
    pthread_mutex_lock(&mono_lock);
    int64_t fake = seen_rate == PPM ? real : anchor_fake + (int64_t)((__int128)(real - anchor_real) * seen_rate / PPM);
    if (rate != seen_rate) {
        if (rate != PPM) {
            anchor_real = real;
            anchor_fake = fake < last_fake ? last_fake : fake;
        }
        __atomic_store_n(&seen_rate, rate, __ATOMIC_RELEASE);
        fake = rate == PPM ? real : anchor_fake;
    }
    if (fake < last_fake)
        fake = last_fake;
    if (fake > real)
        fake = real;
    last_fake = fake;
    pthread_mutex_unlock(&mono_lock);
    return fake;
}

static int64_t to_ns(const struct timespec *ts) { return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec; }

static void from_ns(struct timespec *ts, int64_t ns) {
    ts->tv_sec = (time_t)(ns / 1000000000LL);
    ts->tv_nsec = (long)(ns % 1000000000LL);
}

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
    else if (rc == 0 && clock == CLOCK_MONOTONIC)
        from_ns(ts, slowed(to_ns(ts)));
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
