/* A CPU program with NVTX ranges of every kind the nsys reader maps, for real nsys exports
 * (scripts/make-cpu-nsys-exports.sh -> tests/data/nsys-2022.4-*.sqlite).
 *   argv[1]: rounds (default 3). Each round: a push/pop range named like a vLLM step, ~20 ms busy.
 *   Then one start/end range and one push never popped (nsys closes it at process exit). */
#include <nvtx3/nvToolsExt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void busy_ms(long ms) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000L + (t.tv_nsec - t0.tv_nsec) / 1000000L < ms);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    char name[64];
    for (int i = 0; i < rounds; i++) {
        snprintf(name, sizeof name, "execute_context_%d(8)_generation_0(0)", i);
        nvtxRangePushA(name);
        busy_ms(20);
        nvtxRangePop();
        usleep(30000);
    }
    nvtxRangeId_t range = nvtxRangeStartA("start_end_range");
    busy_ms(5);
    nvtxRangeEnd(range);
    nvtxRangePushA("left_open");
    printf("nvtx_steps: %d rounds\n", rounds);
    return 0;
}
