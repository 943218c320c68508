/* check_agent: tests of core/agent (placeholder until the suite is written). */
#include "testutil.h"

Suite *agent_suite(void)
{
    Suite *s = suite_create("agent");
    return s;
}
