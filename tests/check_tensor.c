/* check_tensor: tests of core/tensor (placeholder until the suite is written). */
#include "testutil.h"

Suite *tensor_suite(void)
{
    Suite *s = suite_create("tensor");
    return s;
}
