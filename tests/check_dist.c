/* check_dist: tests of core/dist (placeholder until the suite is written). */
#include "testutil.h"

Suite *dist_suite(void)
{
    Suite *s = suite_create("dist");
    return s;
}
