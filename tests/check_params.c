/* check_params: tests of core/params (placeholder until the suite is written). */
#include "testutil.h"

Suite *params_suite(void)
{
    Suite *s = suite_create("params");
    return s;
}
