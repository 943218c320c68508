/* check_rng: tests of core/rng (placeholder until the suite is written). */
#include "testutil.h"

Suite *rng_suite(void)
{
    Suite *s = suite_create("rng");
    return s;
}
