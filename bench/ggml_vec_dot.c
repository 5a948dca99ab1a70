// The anchor for `llm bench quant`: a matrix-vector product (rows × cols weights, one input row)
// with ggml's own CPU kernels, one thread, as ggml's mul_mat does it per thread: the input
// converted once to the weight type's vec_dot_type (from_float), then vec_dot per weight row.
// Prints one JSON object per format: {"type", "rows", "cols", "gbs", "us"} (GB/s of weights read,
// best time of repeated runs over `seconds`).
//
// Built and run by bench/quant_kernels.py against the llama.cpp build in .cache/llama.cpp:
//   cc -O2 bench/ggml_vec_dot.c -I .cache/llama.cpp/src/ggml/include -L .cache/llama.cpp/build/bin \
//      -lggml-cpu -lggml-base -lggml -Wl,-rpath,... -lm -o .cache/llama.cpp/ggml_vec_dot
//   ggml_vec_dot ROWS COLS SECONDS TYPE...   (TYPE: q8_0 q4_0 q4_1 q5_0 q5_1 q2_K q3_K q4_K q5_K q6_K)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "ggml.h"
#include "ggml-cpu.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s ROWS COLS SECONDS TYPE...\n", argv[0]);
        return 1;
    }
    int rows = atoi(argv[1]), cols = atoi(argv[2]);
    double seconds = atof(argv[3]);
    if (rows <= 0 || cols <= 0 || !(seconds > 0)) {
        fprintf(stderr, "rows, cols and seconds must be positive\n");
        return 1;
    }
    ggml_cpu_init();
    float *w = malloc(sizeof(float) * (size_t)rows * cols), *x = malloc(sizeof(float) * cols), *y = malloc(sizeof(float) * rows);
    srand(1);
    for (size_t i = 0; i < (size_t)rows * cols; i++) w[i] = (rand() / (float)RAND_MAX - 0.5f) * 2;
    for (int i = 0; i < cols; i++) x[i] = (rand() / (float)RAND_MAX - 0.5f) * 2;
    for (int a = 4; a < argc; a++) {
        enum ggml_type type = GGML_TYPE_COUNT;
        for (int t = 0; t < GGML_TYPE_COUNT; t++) {
            const char *name = ggml_type_name((enum ggml_type)t);
            if (name && strcasecmp(name, argv[a]) == 0) type = (enum ggml_type)t;
        }
        if (type == GGML_TYPE_COUNT) {
            fprintf(stderr, "unknown type %s\n", argv[a]);
            return 1;
        }
        if (cols % ggml_blck_size(type) != 0) {
            fprintf(stderr, "%s: %d columns is not a multiple of its block of %ld\n", argv[a], cols, (long)ggml_blck_size(type));
            return 1;
        }
        const struct ggml_type_traits_cpu *tr = ggml_get_type_traits_cpu(type);
        const struct ggml_type_traits_cpu *vt = ggml_get_type_traits_cpu(tr->vec_dot_type);
        size_t rowBytes = ggml_row_size(type, cols);
        char *q = malloc(rowBytes * rows);
        void *xq = malloc(ggml_row_size(tr->vec_dot_type, cols));
        ggml_quantize_chunk(type, w, q, 0, rows, cols, NULL);
        double best = 1e9, end = now() + seconds;
        do {
            double t0 = now();
            vt->from_float(x, xq, cols);
            for (int r = 0; r < rows; r++) tr->vec_dot(cols, y + r, 0, q + r * rowBytes, 0, xq, 0, 1);
            double dt = now() - t0;
            if (dt < best) best = dt;
        } while (now() < end);
        printf("{\"type\":\"%s\",\"rows\":%d,\"cols\":%d,\"gbs\":%.4f,\"us\":%.3f}\n", ggml_type_name(type), rows, cols,
               rowBytes * rows / best / 1e9, best * 1e6);
        free(q);
        free(xq);
    }
    free(w); free(x); free(y);
    return 0;
}
