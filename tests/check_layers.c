/* check_layers: tests of core/layers (placeholder until the suite is written). */
#include "testutil.h"

Suite *layers_suite(void)
{
    Suite *s = suite_create("layers");
    return s;
}
