/* check_rng: tests of core/rng: reproducibility per (seed, stream), independence of streams, a
 * known-answer test of xoshiro256**, and the moments of the uniform, normal and integer draws.
 *
 * Statistical bounds are 6 standard errors of the statistic (or its chi-square equivalent), so a
 * correct generator fails with probability below 1e-8 per check, while a biased or broken one
 * (stuck bits, a wrong Box-Muller constant, modulo bias) misses by far more. All seeds are fixed,
 * so the results are deterministic anyway. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/rng.h"

/* Number of standard errors allowed for every statistical check. */
#define NSIG 6.0

/* Asserts |got - want| <= NSIG * se. */
#define ck_assert_stat(got, want, se, what)                                                     \
    ck_assert_msg(fabs((got) - (want)) <= NSIG * (se), "%s: %.6g, expected %.6g +- %.3g", what, \
                  (double)(got), (double)(want), NSIG * (se))

/* The NSIG-sigma upper quantile of chi-square with k degrees of freedom (Wilson-Hilferty). */
static double chi2_bound(double k)
{
    double c = 1.0 - 2.0 / (9.0 * k) + NSIG * sqrt(2.0 / (9.0 * k));
    return k * c * c * c;
}

/* An assertion for hot loops: libcheck's ck_assert records a mark point on every success, which
 * costs a pipe write per call. */
#define check_or_abort(cond, ...)      \
    do {                               \
        if (!(cond))                   \
            ck_abort_msg(__VA_ARGS__); \
    } while (0)

static int popcount64(uint64_t x)
{
    int c = 0;
    while (x) {
        x &= x - 1;
        c++;
    }
    return c;
}

START_TEST(test_known_answer)
{
    /* xoshiro256** from the state {1, 2, 3, 4}: the reference implementation's first outputs. */
    rng_t r;
    memset(&r, 0, sizeof r);
    r.s[0] = 1;
    r.s[1] = 2;
    r.s[2] = 3;
    r.s[3] = 4;
    const uint64_t want[6] = {
        0x2d00ull,           0x0ull, 0x5a007080ull, 0x10e0000000009d80ull, 0x10e0b61ce1009d80ull,
        0x870021ce143ad00ull};
    for (int i = 0; i < 6; i++)
        ck_assert_msg(rng_next(&r) == want[i], "output %d differs", i);
}
END_TEST

START_TEST(test_same_seed_same_sequence)
{
    rng_t a, b;
    rng_seed(&a, 12345, 3);
    rng_seed(&b, 12345, 3);
    for (int i = 0; i < 1000; i++)
        check_or_abort(rng_next(&a) == rng_next(&b), "draw %d differs", i);
    /* Mixed calls stay in lock step too, including the cached second normal. */
    for (int i = 0; i < 1001; i++) {
        ck_assert_double_eq(rng_uniform(&a), rng_uniform(&b));
        ck_assert_float_eq(rng_normal(&a), rng_normal(&b));
        ck_assert_uint_eq(rng_below(&a, 1000 + (uint64_t)i), rng_below(&b, 1000 + (uint64_t)i));
    }
}
END_TEST

START_TEST(test_reseed_restarts)
{
    /* Reseeding restarts the sequence and drops a cached Box-Muller spare. */
    rng_t a, b;
    rng_seed(&a, 99, 1);
    float first[5];
    for (int i = 0; i < 5; i++)
        first[i] = rng_normal(&a); /* odd count: a spare is cached */
    ck_assert_int_eq(a.has_spare, 1);
    rng_seed(&a, 99, 1);
    rng_seed(&b, 99, 1);
    for (int i = 0; i < 5; i++) {
        float x = rng_normal(&a);
        ck_assert_float_eq(x, first[i]);
        ck_assert_float_eq(x, rng_normal(&b));
    }
}
END_TEST

START_TEST(test_streams_differ)
{
    /* 64 streams of one seed and the same stream of 64 seeds: all first outputs distinct, and no
     * sequence shares a value at the same position with stream 0 over 1000 draws. */
    enum { S = 64, L = 1000 };
    static uint64_t seq[S][L];
    for (int s = 0; s < S; s++) {
        rng_t r;
        rng_seed(&r, 42, (uint64_t)s);
        for (int i = 0; i < L; i++)
            seq[s][i] = rng_next(&r);
    }
    for (int s = 0; s < S; s++)
        for (int t = s + 1; t < S; t++) {
            check_or_abort(seq[s][0] != seq[t][0], "streams %d and %d start alike", s, t);
            int same = 0;
            for (int i = 0; i < L; i++)
                same += seq[s][i] == seq[t][i];
            check_or_abort(same == 0, "streams %d and %d share %d values", s, t, same);
        }
    for (int k = 0; k < S; k++) {
        rng_t a, b;
        rng_seed(&a, (uint64_t)k, 0);
        rng_seed(&b, (uint64_t)k + 1, 0);
        ck_assert_uint_ne(rng_next(&a), rng_next(&b));
    }
    /* (seed, stream) and (stream, seed) are different streams. */
    rng_t a, b;
    rng_seed(&a, 5, 7);
    rng_seed(&b, 7, 5);
    ck_assert_uint_ne(rng_next(&a), rng_next(&b));
}
END_TEST

START_TEST(test_adjacent_streams_uncorrelated)
{
    /* Neighbouring streams (and seeds) must look unrelated: the XOR of their outputs has 32 bits
     * set on average (sd 4 per draw), and their uniforms have correlation ~ 0. */
    enum { N = 20000 };
    for (int variant = 0; variant < 2; variant++) {
        rng_t a, b;
        if (variant == 0) {
            rng_seed(&a, 1000, 17);
            rng_seed(&b, 1000, 18);
        } else {
            rng_seed(&a, 1000, 17);
            rng_seed(&b, 1001, 17);
        }
        double pop = 0.0, sab = 0.0;
        for (int i = 0; i < N; i++) {
            pop += popcount64(rng_next(&a) ^ rng_next(&b));
            sab += (rng_uniform(&a) - 0.5) * (rng_uniform(&b) - 0.5);
        }
        ck_assert_stat(pop / N, 32.0, 4.0 / sqrt(N), "mean popcount of a ^ b");
        /* corr = E[(a - 1/2)(b - 1/2)] * 12, standard error 1 / sqrt(N). */
        ck_assert_stat(12.0 * sab / N, 0.0, 1.0 / sqrt(N), "correlation of streams");
    }
}
END_TEST

START_TEST(test_bits_balanced)
{
    /* Every one of the 64 output bits is set half of the time. */
    enum { N = 100000 };
    static int ones[64];
    memset(ones, 0, sizeof ones);
    rng_t r;
    rng_seed(&r, 2024, 0);
    for (int i = 0; i < N; i++) {
        uint64_t x = rng_next(&r);
        for (int b = 0; b < 64; b++)
            ones[b] += (int)((x >> b) & 1);
    }
    for (int b = 0; b < 64; b++) {
        char what[32];
        snprintf(what, sizeof what, "fraction of bit %d", b);
        ck_assert_stat((double)ones[b] / N, 0.5, 0.5 / sqrt(N), what);
    }
}
END_TEST

START_TEST(test_uniform_moments)
{
    enum { N = 1 << 20, BINS = 64 };
    static int hist[BINS];
    memset(hist, 0, sizeof hist);
    rng_t r;
    rng_seed(&r, 77, 5);
    double s = 0.0, s2 = 0.0, lag = 0.0, prev = rng_uniform(&r) - 0.5;
    double lo = 1.0, hi = 0.0;
    for (int i = 0; i < N; i++) {
        double u = rng_uniform(&r);
        check_or_abort(u >= 0.0 && u < 1.0, "uniform %.17g outside [0, 1)", u);
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
        double d = u - 0.5;
        s += d;
        s2 += d * d;
        lag += d * prev;
        prev = d;
        hist[(int)(u * BINS)]++;
    }
    double mean = 0.5 + s / N;
    double var = s2 / N - (s / N) * (s / N);
    ck_assert_stat(mean, 0.5, sqrt(1.0 / 12.0 / N), "uniform mean");
    /* Var[(u - 1/2)^2] = 1/80 - 1/144. */
    ck_assert_stat(var, 1.0 / 12.0, sqrt((1.0 / 80.0 - 1.0 / 144.0) / N), "uniform variance");
    ck_assert_stat(12.0 * lag / N, 0.0, 1.0 / sqrt(N), "uniform lag-1 correlation");
    /* The range is covered up to its ends. */
    ck_assert_double_lt(lo, 1e-4);
    ck_assert_double_gt(hi, 1.0 - 1e-4);
    /* Chi-square over 64 bins, 63 degrees of freedom. */
    double chi2 = 0.0, e = (double)N / BINS;
    for (int b = 0; b < BINS; b++)
        chi2 += (hist[b] - e) * (hist[b] - e) / e;
    ck_assert_msg(chi2 < chi2_bound(BINS - 1), "uniform chi2 %.1f", chi2);
}
END_TEST

START_TEST(test_uniform_resolution)
{
    /* 53 random bits: the low bits of the mantissa vary too (a float-derived uniform would leave
     * u * 2^53 a multiple of 2^29). */
    rng_t r;
    rng_seed(&r, 3, 3);
    int odd = 0;
    for (int i = 0; i < 1000; i++) {
        double u = rng_uniform(&r);
        double k = u * 9007199254740992.0; /* 2^53: an exact integer */
        check_or_abort(k == floor(k), "u * 2^53 = %.17g is not an integer", k);
        odd += fmod(k, 2.0) == 1.0;
    }
    ck_assert_int_gt(odd, 400);
    ck_assert_int_lt(odd, 600);
}
END_TEST

START_TEST(test_normal_moments)
{
    enum { N = 1 << 20 };
    rng_t r;
    rng_seed(&r, 31337, 2);
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
    long in1 = 0, out3 = 0;
    for (int i = 0; i < N; i++) {
        double x = rng_normal(&r);
        check_or_abort(isfinite(x), "normal draw %d is %g", i, x);
        s1 += x;
        s2 += x * x;
        s3 += x * x * x;
        s4 += x * x * x * x;
        in1 += fabs(x) < 1.0;
        out3 += fabs(x) > 3.0;
    }
    double mean = s1 / N, m2 = s2 / N, m3 = s3 / N, m4 = s4 / N;
    ck_assert_stat(mean, 0.0, 1.0 / sqrt(N), "normal mean");
    ck_assert_stat(m2, 1.0, sqrt(2.0 / N), "normal variance");
    ck_assert_stat(m3, 0.0, sqrt(15.0 / N), "normal third moment");
    ck_assert_stat(m4, 3.0, sqrt(96.0 / N), "normal fourth moment");
    /* P(|x| < 1) = erf(1/sqrt 2), P(|x| > 3) = erfc(3/sqrt 2). */
    double p1 = erf(1.0 / sqrt(2.0)), p3 = erfc(3.0 / sqrt(2.0));
    ck_assert_stat((double)in1 / N, p1, sqrt(p1 * (1 - p1) / N), "fraction within 1 sigma");
    ck_assert_stat((double)out3 / N, p3, sqrt(p3 * (1 - p3) / N), "fraction beyond 3 sigma");
}
END_TEST

START_TEST(test_normal_pairs_uncorrelated)
{
    /* The two normals of a Box-Muller pair are independent: their product has mean 0, sd 1. */
    enum { N = 1 << 18 };
    rng_t r;
    rng_seed(&r, 8, 8);
    double sp = 0.0;
    for (int i = 0; i < N; i++) {
        double a = rng_normal(&r), b = rng_normal(&r);
        sp += a * b;
    }
    ck_assert_stat(sp / N, 0.0, 1.0 / sqrt(N), "product of paired normals");
}
END_TEST

START_TEST(test_fill_normal_matches_draws)
{
    rng_t a, b;
    rng_seed(&a, 4, 4);
    rng_seed(&b, 4, 4);
    float x[101];
    x[100] = 12345.0f;
    rng_fill_normal(&a, x, 100);
    for (int i = 0; i < 100; i++)
        ck_assert_float_eq(x[i], rng_normal(&b));
    ck_assert_float_eq(x[100], 12345.0f);
    /* An odd-length fill leaves the spare for the next call: the streams stay in step. */
    rng_fill_normal(&a, x, 7);
    for (int i = 0; i < 7; i++)
        ck_assert_float_eq(x[i], rng_normal(&b));
    ck_assert_float_eq(rng_normal(&a), rng_normal(&b));
    rng_fill_normal(&a, x, 0);
    ck_assert_float_eq(rng_normal(&a), rng_normal(&b));
}
END_TEST

START_TEST(test_fill_uniform_range)
{
    enum { N = 1 << 18 };
    static float x[N + 1];
    rng_t r;
    rng_seed(&r, 6, 1);
    const float ranges[4][2] = {{0.0f, 1.0f}, {-3.0f, 5.0f}, {100.0f, 100.5f}, {-1e-3f, 0.0f}};
    for (int k = 0; k < 4; k++) {
        float lo = ranges[k][0], hi = ranges[k][1];
        x[N] = -777.0f;
        rng_fill_uniform(&r, x, N, lo, hi);
        ck_assert_float_eq(x[N], -777.0f);
        double s = 0.0, s2 = 0.0, w = (double)hi - lo, mid = 0.5 * ((double)lo + hi);
        for (int i = 0; i < N; i++) {
            check_or_abort(x[i] >= lo && x[i] <= hi, "%g outside [%g, %g]", x[i], lo, hi);
            double d = x[i] - mid;
            s += d;
            s2 += d * d;
        }
        ck_assert_stat(mid + s / N, mid, w * sqrt(1.0 / 12.0 / N), "fill_uniform mean");
        ck_assert_stat(s2 / N, w * w / 12.0, w * w * sqrt((1.0 / 80 - 1.0 / 144) / N),
                       "fill_uniform variance");
    }
    /* A degenerate range gives its one value; n = 0 writes nothing. */
    rng_fill_uniform(&r, x, 100, 2.5f, 2.5f);
    for (int i = 0; i < 100; i++)
        ck_assert_float_eq(x[i], 2.5f);
    x[0] = 9.0f;
    rng_fill_uniform(&r, x, 0, 0.0f, 1.0f);
    ck_assert_float_eq(x[0], 9.0f);
}
END_TEST

START_TEST(test_below_range)
{
    rng_t r;
    rng_seed(&r, 10, 0);
    const uint64_t ns[] = {1, 2, 3, 7, 10, 1000, 1ull << 32, (1ull << 63) + 1, UINT64_MAX};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
        for (int i = 0; i < 2000; i++) {
            uint64_t x = rng_below(&r, ns[k]);
            check_or_abort(x < ns[k], "rng_below(%llu) gave %llu", (unsigned long long)ns[k],
                           (unsigned long long)x);
        }
    for (int i = 0; i < 100; i++)
        ck_assert_uint_eq(rng_below(&r, 1), 0);
}
END_TEST

START_TEST(test_below_uniform_small)
{
    /* Counts over 0..9: each within 6 sd of N/10, and a chi-square over 9 degrees of freedom. */
    enum { N = 500000, K = 10 };
    int cnt[K] = {0};
    rng_t r;
    rng_seed(&r, 11, 0);
    for (int i = 0; i < N; i++)
        cnt[rng_below(&r, K)]++;
    double e = (double)N / K, chi2 = 0.0;
    for (int k = 0; k < K; k++) {
        ck_assert_stat((double)cnt[k], e, sqrt(e * (1.0 - 1.0 / K)), "rng_below(10) count");
        chi2 += (cnt[k] - e) * (cnt[k] - e) / e;
    }
    ck_assert_msg(chi2 < chi2_bound(K - 1), "rng_below chi2 %.1f", chi2);
}
END_TEST

START_TEST(test_below_unbiased_large)
{
    /* n = 2^64 * 2/3: a plain x % n would return values below 2^64 - n (a third of the range)
     * twice as often, so P(result < n/2) would be 2/3 instead of 1/2. */
    enum { N = 200000 };
    const uint64_t n = 0xaaaaaaaaaaaaaaabull;
    rng_t r;
    rng_seed(&r, 12, 0);
    long low = 0;
    for (int i = 0; i < N; i++)
        low += rng_below(&r, n) < n / 2;
    ck_assert_stat((double)low / N, 0.5, 0.5 / sqrt(N), "P(rng_below(2^64 * 2/3) < n/2)");
}
END_TEST

Suite *rng_suite(void)
{
    Suite *s = suite_create("rng");

    TCase *tc = tcase_create("sequence");
    tcase_add_test(tc, test_known_answer);
    tcase_add_test(tc, test_same_seed_same_sequence);
    tcase_add_test(tc, test_reseed_restarts);
    tcase_add_test(tc, test_streams_differ);
    tcase_add_test(tc, test_adjacent_streams_uncorrelated);
    suite_add_tcase(s, tc);

    tc = tcase_create("distribution");
    tcase_add_test(tc, test_bits_balanced);
    tcase_add_test(tc, test_uniform_moments);
    tcase_add_test(tc, test_uniform_resolution);
    tcase_add_test(tc, test_normal_moments);
    tcase_add_test(tc, test_normal_pairs_uncorrelated);
    tcase_add_test(tc, test_fill_normal_matches_draws);
    tcase_add_test(tc, test_fill_uniform_range);
    suite_add_tcase(s, tc);

    tc = tcase_create("below");
    tcase_add_test(tc, test_below_range);
    tcase_add_test(tc, test_below_uniform_small);
    tcase_add_test(tc, test_below_unbiased_large);
    suite_add_tcase(s, tc);

    return s;
}
