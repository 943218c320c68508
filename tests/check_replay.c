/* check_replay: tests of core/replay (placeholder until the suite is written). */
#include "testutil.h"

Suite *replay_suite(void)
{
    Suite *s = suite_create("replay");
    return s;
}
