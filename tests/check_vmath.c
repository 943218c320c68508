/* check_vmath: tests of core/vmath (placeholder until the suite is written). */
#include "testutil.h"

Suite *vmath_suite(void)
{
    Suite *s = suite_create("vmath");
    return s;
}
