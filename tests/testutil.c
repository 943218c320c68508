/* testutil: the finite-difference gradient check and fills. */
#include "testutil.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

gradcheck_result gradcheck(loss_fn loss, void *ctx, float *x, const float *grad, size_t n, float h,
                           size_t max_checks, double floor)
{
    gradcheck_result res = {0};
    size_t stride = n <= max_checks ? 1 : n / max_checks;
    for (size_t i = 0; i < n; i += stride) {
        float keep = x[i];
        x[i] = keep + h;
        double lp = loss(ctx);
        x[i] = keep - h;
        double lm = loss(ctx);
        x[i] = keep;
        /* The step actually taken in float, not the nominal h. */
        double step = (double)(keep + h) - (double)(keep - h);
        double num = (lp - lm) / step;
        double ana = grad[i];
        double denom = fabs(ana) + fabs(num);
        if (denom < floor)
            denom = floor;
        double rel = fabs(ana - num) / denom;
        if (rel > res.max_rel_err || res.checked == 0) {
            if (rel >= res.max_rel_err) {
                res.max_rel_err = rel;
                res.worst_index = i;
                res.analytic = ana;
                res.numeric = num;
            }
        }
        res.checked++;
    }
    return res;
}

void fill_uniform(float *x, size_t n, float lo, float hi, rng_t *r)
{
    rng_fill_uniform(r, x, n, lo, hi);
}

void fill_normal(float *x, size_t n, float scale, rng_t *r)
{
    for (size_t i = 0; i < n; i++)
        x[i] = scale * rng_normal(r);
}

double test_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void test_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void test_rm_rf(const char *path)
{
    DIR *dir = opendir(path);
    if (!dir) {
        unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char child[1024];
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
            test_rm_rf(child);
        else
            unlink(child);
    }
    closedir(dir);
    rmdir(path);
}

int test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
    close(fd);
    return ntohs(a.sin_port);
}
