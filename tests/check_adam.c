/* check_adam: tests of core/adam (placeholder until the suite is written). */
#include "testutil.h"

Suite *adam_suite(void)
{
    Suite *s = suite_create("adam");
    return s;
}
