/* check_params: tests of core/params: the layout of named groups (offsets on 16-float
 * boundaries, no overlap, lookup by name, the group limit) and the aligned, zeroed block. */
#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/params.h"

/* Every group starts on a 16-float boundary, lies inside the block and does not overlap the next
 * one; the total is a multiple of 16 that covers the last group. */
static void check_layout_invariants(const param_layout *l)
{
    ck_assert_uint_eq(l->total % 16, 0);
    for (int i = 0; i < l->n_groups; i++) {
        const param_group *g = &l->groups[i];
        ck_assert_msg(g->offset % 16 == 0, "group %d (%s) offset %zu not 16-aligned", i, g->name,
                      g->offset);
        ck_assert_uint_le(g->offset + g->count, l->total);
        if (i + 1 < l->n_groups)
            ck_assert_uint_le(g->offset + g->count, l->groups[i + 1].offset);
    }
}

START_TEST(test_layout_init_empty)
{
    param_layout l;
    memset(&l, 0xab, sizeof l);
    params_layout_init(&l);
    ck_assert_int_eq(l.n_groups, 0);
    ck_assert_uint_eq(l.total, 0);
    ck_assert_ptr_null(params_layout_find(&l, "w"));
    ck_assert_ptr_null(params_layout_find(&l, ""));
}
END_TEST

START_TEST(test_layout_offsets_aligned)
{
    param_layout l;
    params_layout_init(&l);
    const size_t counts[] = {1, 16, 17, 0, 100, 5, 15, 32, 33};
    const size_t want[] = {0, 16, 32, 64, 64, 176, 192, 208, 240};
    const size_t n = sizeof counts / sizeof counts[0];
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "g%zu", i);
        size_t off = params_layout_add(&l, name, counts[i]);
        ck_assert_uint_eq(off, want[i]);
        ck_assert_uint_eq(l.groups[i].offset, off);
        ck_assert_uint_eq(l.groups[i].count, counts[i]);
    }
    ck_assert_int_eq(l.n_groups, (int)n);
    ck_assert_uint_eq(l.total, 240 + 48);
    check_layout_invariants(&l);
}
END_TEST

START_TEST(test_layout_random_counts)
{
    rng_t r;
    rng_seed(&r, 11, 0);
    param_layout l;
    params_layout_init(&l);
    size_t sum = 0;
    for (int i = 0; i < PARAMS_MAX_GROUPS; i++) {
        char name[32];
        snprintf(name, sizeof name, "layer%d", i);
        size_t count = (size_t)rng_below(&r, 5000);
        size_t off = params_layout_add(&l, name, count);
        ck_assert_uint_ne(off, (size_t)-1);
        sum += count;
    }
    check_layout_invariants(&l);
    /* Padding is at most 15 floats per group. */
    ck_assert_uint_ge(l.total, sum);
    ck_assert_uint_le(l.total, sum + 15 * (size_t)PARAMS_MAX_GROUPS);
}
END_TEST

START_TEST(test_layout_find)
{
    param_layout l;
    params_layout_init(&l);
    params_layout_add(&l, "encoder.w", 300);
    params_layout_add(&l, "encoder.b", 30);
    params_layout_add(&l, "gru", 1000);
    const param_group *g = params_layout_find(&l, "encoder.b");
    ck_assert_ptr_nonnull(g);
    ck_assert_str_eq(g->name, "encoder.b");
    ck_assert_uint_eq(g->offset, 304);
    ck_assert_uint_eq(g->count, 30);
    g = params_layout_find(&l, "gru");
    ck_assert_ptr_nonnull(g);
    ck_assert_ptr_eq(g, &l.groups[2]);
    ck_assert_uint_eq(g->offset, 336);
    /* Exact match only: no prefixes, no case folding. */
    ck_assert_ptr_null(params_layout_find(&l, "encoder"));
    ck_assert_ptr_null(params_layout_find(&l, "encoder.w2"));
    ck_assert_ptr_null(params_layout_find(&l, "GRU"));
    ck_assert_ptr_null(params_layout_find(&l, ""));
}
END_TEST

START_TEST(test_layout_long_name_truncated)
{
    param_layout l;
    params_layout_init(&l);
    const char *n31 = "abcdefghijklmnopqrstuvwxyz01234";          /* exactly 31 characters: fits */
    const char *n40 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd"; /* 40: truncated to 31 */
    ck_assert_uint_eq(strlen(n31), 31);
    params_layout_add(&l, n31, 8);
    params_layout_add(&l, n40, 8);
    const param_group *g = params_layout_find(&l, n31);
    ck_assert_ptr_nonnull(g);
    ck_assert_uint_eq(g->offset, 0);
    ck_assert_uint_eq(strlen(l.groups[1].name), 31);
    ck_assert_int_eq(strncmp(l.groups[1].name, n40, 31), 0);
    g = params_layout_find(&l, "ABCDEFGHIJKLMNOPQRSTUVWXYZ01234");
    ck_assert_ptr_eq(g, &l.groups[1]);
}
END_TEST

START_TEST(test_layout_full)
{
    param_layout l;
    params_layout_init(&l);
    for (int i = 0; i < PARAMS_MAX_GROUPS; i++) {
        char name[32];
        snprintf(name, sizeof name, "g%d", i);
        ck_assert_uint_eq(params_layout_add(&l, name, 3), (size_t)i * 16);
    }
    ck_assert_int_eq(l.n_groups, PARAMS_MAX_GROUPS);
    size_t total = l.total;
    ck_assert_uint_eq(params_layout_add(&l, "one_too_many", 3), (size_t)-1);
    ck_assert_uint_eq(params_layout_add(&l, "again", 0), (size_t)-1);
    /* A refused group leaves the layout as it was. */
    ck_assert_int_eq(l.n_groups, PARAMS_MAX_GROUPS);
    ck_assert_uint_eq(l.total, total);
    ck_assert_ptr_null(params_layout_find(&l, "one_too_many"));
    ck_assert_ptr_nonnull(params_layout_find(&l, "g31"));
    check_layout_invariants(&l);
}
END_TEST

START_TEST(test_layout_size_overflow)
{
    /* A count whose padded size does not fit in size_t must be refused, not wrapped into a group
     * that overlaps the next one. */
    param_layout l;
    params_layout_init(&l);
    ck_assert_uint_eq(params_layout_add(&l, "a", 100), 0);
    ck_assert_uint_eq(params_layout_add(&l, "huge", SIZE_MAX), (size_t)-1);
    ck_assert_uint_eq(params_layout_add(&l, "huge2", SIZE_MAX - 15), (size_t)-1);
    ck_assert_uint_eq(params_layout_add(&l, "huge3", SIZE_MAX - l.total - 8), (size_t)-1);
    ck_assert_int_eq(l.n_groups, 1);
    ck_assert_uint_eq(l.total, 112);
    ck_assert_uint_eq(params_layout_add(&l, "b", 1), 112);
    check_layout_invariants(&l);
}
END_TEST

START_TEST(test_alloc_zeroed_aligned)
{
    const size_t sizes[] = {1, 2, 15, 16, 17, 63, 64, 65, 1000, 4097, 100000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        float *p = params_alloc(n);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % 64, 0);
        size_t nonzero = 0;
        for (size_t i = 0; i < n; i++)
            nonzero += p[i] != 0.0f;
        ck_assert_msg(nonzero == 0, "n=%zu: %zu floats not zeroed", n, nonzero);
        /* The whole block is writable (ASan checks the bounds in the sanitizer build). */
        for (size_t i = 0; i < n; i++)
            p[i] = (float)i;
        params_free(p);
    }
}
END_TEST

START_TEST(test_alloc_layout_block)
{
    /* The use the module is for: one block indexed by a layout, each group 64-byte aligned. */
    param_layout l;
    params_layout_init(&l);
    params_layout_add(&l, "w", 37);
    params_layout_add(&l, "b", 5);
    params_layout_add(&l, "gamma", 64);
    float *p = params_alloc(l.total);
    ck_assert_ptr_nonnull(p);
    for (int i = 0; i < l.n_groups; i++) {
        float *view = p + l.groups[i].offset;
        ck_assert_uint_eq((uintptr_t)view % 64, 0);
        for (size_t j = 0; j < l.groups[i].count; j++)
            view[j] = (float)(i + 1);
    }
    ck_assert(p[36] == 1.0f && p[37] == 0.0f && p[48] == 2.0f && p[64] == 3.0f);
    params_free(p);
}
END_TEST

START_TEST(test_alloc_zero_and_free_null)
{
    float *p = params_alloc(0);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % 64, 0);
    params_free(p);
    params_free(NULL);
}
END_TEST

START_TEST(test_alloc_size_overflow)
{
    /* n * sizeof(float), rounded up to 64 bytes, would wrap around: NULL, not a tiny block. */
    const size_t bad[] = {SIZE_MAX, SIZE_MAX / sizeof(float) + 1, SIZE_MAX / sizeof(float),
                          SIZE_MAX / sizeof(float) - 7};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        float *p = params_alloc(bad[i]);
        ck_assert_msg(p == NULL, "params_alloc(%zu) returned a block", bad[i]);
    }
}
END_TEST

Suite *params_suite(void)
{
    Suite *s = suite_create("params");

    TCase *tc = tcase_create("layout");
    tcase_add_test(tc, test_layout_init_empty);
    tcase_add_test(tc, test_layout_offsets_aligned);
    tcase_add_test(tc, test_layout_random_counts);
    tcase_add_test(tc, test_layout_find);
    suite_add_tcase(s, tc);

    tc = tcase_create("alloc");
    tcase_add_test(tc, test_alloc_zeroed_aligned);
    tcase_add_test(tc, test_alloc_layout_block);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_test(tc, test_layout_long_name_truncated);
    tcase_add_test(tc, test_layout_full);
    tcase_add_test(tc, test_layout_size_overflow);
    tcase_add_test(tc, test_alloc_zero_and_free_null);
    tcase_add_test(tc, test_alloc_size_overflow);
    suite_add_tcase(s, tc);

    return s;
}
