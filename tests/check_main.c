/* check_main: runs every libcheck suite of elbod's tests and prints libcheck's summary.
 * CK_RUN_SUITE=<name> (a libcheck variable) runs one suite, CK_RUN_CASE=<name> one test case. */
#include <stdlib.h>

#include "core/tensor.h"
#include "core/vmath.h"
#include "testutil.h"

int main(void)
{
    vm_thread_init();
    tensor_set_blas_threads(1);
    SRunner *sr = srunner_create(vmath_suite());
    srunner_add_suite(sr, tensor_suite());
    srunner_add_suite(sr, rng_suite());
    srunner_add_suite(sr, layers_suite());
    srunner_add_suite(sr, dist_suite());
    srunner_add_suite(sr, adam_suite());
    srunner_add_suite(sr, params_suite());
    srunner_add_suite(sr, elbo_suite());
    srunner_add_suite(sr, replay_suite());
    srunner_add_suite(sr, agent_suite());
    srunner_add_suite(sr, planner_suite());
    srunner_add_suite(sr, store_suite());
    srunner_add_suite(sr, e2e_suite());
    srunner_add_suite(sr, clients_suite());
    srunner_add_suite(sr, auth_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
