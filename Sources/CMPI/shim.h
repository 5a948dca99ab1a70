// MPI for Swift, through `static inline` functions on MPI_COMM_WORLD.
//
// Open MPI spells MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM and MPI_IN_PLACE as macros over the
// addresses of incomplete structs, which Swift cannot import; these accessors hide them, and a
// request is an opaque heap handle (MPI_Request is a pointer in Open MPI, an int in MPICH).
// Where mpi.h is absent (MPI not installed, Apple systems without it) the same functions exist
// and report that MPI is not compiled in, so the package builds everywhere; `Distributed` is the
// only caller. Counts are ints, as in MPI: callers split larger buffers.
#ifndef LLM_CMPI_SHIM_H
#define LLM_CMPI_SHIM_H

#include <stdlib.h>

#if __has_include(<mpi.h>)
#include <mpi.h>

static inline int llm_mpi_compiled(void) { return 1; }

static inline int llm_mpi_init(void) {
    int provided = 0;
    return MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
}
static inline int llm_mpi_initialized(void) { int flag = 0; MPI_Initialized(&flag); return flag; }
static inline int llm_mpi_finalize(void) { return MPI_Finalize(); }
static inline int llm_mpi_rank(void) { int r = 0; MPI_Comm_rank(MPI_COMM_WORLD, &r); return r; }
static inline int llm_mpi_size(void) { int n = 1; MPI_Comm_size(MPI_COMM_WORLD, &n); return n; }
static inline void llm_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
static inline int llm_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static inline double llm_mpi_wtime(void) { return MPI_Wtime(); }

static inline int llm_mpi_allreduce_sum_f32(float *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static inline int llm_mpi_allreduce_sum_f64(double *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
static inline int llm_mpi_allreduce_max_f64(double *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
}
static inline int llm_mpi_bcast_bytes(void *buffer, int count, int root) {
    return MPI_Bcast(buffer, count, MPI_BYTE, root, MPI_COMM_WORLD);
}
static inline int llm_mpi_bcast_f32(float *buffer, int count, int root) {
    return MPI_Bcast(buffer, count, MPI_FLOAT, root, MPI_COMM_WORLD);
}
/// Every rank's `counts[r]` floats at `displacements[r]` of `buffer`, gathered in place on all.
static inline int llm_mpi_allgatherv_f32(float *buffer, const int *counts, const int *displacements) {
    return MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buffer, counts, displacements, MPI_FLOAT, MPI_COMM_WORLD);
}
/// Gathers every rank's part on `root` only (checkpoints of sharded state).
static inline int llm_mpi_gatherv_f32(float *buffer, const int *counts, const int *displacements, int root) {
    int rank = llm_mpi_rank();
    if (rank == root) return MPI_Gatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buffer, counts, displacements, MPI_FLOAT, root, MPI_COMM_WORLD);
    return MPI_Gatherv(buffer + displacements[rank], counts[rank], MPI_FLOAT, NULL, NULL, NULL, MPI_FLOAT, root, MPI_COMM_WORLD);
}

/// Starts a sum all-reduce in place; returns a handle for llm_mpi_test / llm_mpi_wait (NULL on failure).
static inline void *llm_mpi_iallreduce_sum_f32(float *buffer, int count) {
    MPI_Request *request = (MPI_Request *)malloc(sizeof(MPI_Request));
    if (!request) return NULL;
    if (MPI_Iallreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, request) != MPI_SUCCESS) { free(request); return NULL; }
    return request;
}
/// 1 when the operation has finished (the handle stays valid until llm_mpi_wait), 0 if not, <0 on error.
static inline int llm_mpi_test(void *handle) {
    int done = 0;
    if (MPI_Test((MPI_Request *)handle, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) return -1;
    return done;
}
/// Waits for the operation and frees the handle.
static inline int llm_mpi_wait(void *handle) {
    int r = MPI_Wait((MPI_Request *)handle, MPI_STATUS_IGNORE);
    free(handle);
    return r;
}

#else

static inline int llm_mpi_compiled(void) { return 0; }
static inline int llm_mpi_init(void) { return -1; }
static inline int llm_mpi_initialized(void) { return 0; }
static inline int llm_mpi_finalize(void) { return -1; }
static inline int llm_mpi_rank(void) { return 0; }
static inline int llm_mpi_size(void) { return 1; }
static inline void llm_mpi_abort(int code) { exit(code); }
static inline int llm_mpi_barrier(void) { return 0; }
static inline double llm_mpi_wtime(void) { return 0; }
static inline int llm_mpi_allreduce_sum_f32(float *buffer, int count) { (void)buffer; (void)count; return 0; }
static inline int llm_mpi_allreduce_sum_f64(double *buffer, int count) { (void)buffer; (void)count; return 0; }
static inline int llm_mpi_allreduce_max_f64(double *buffer, int count) { (void)buffer; (void)count; return 0; }
static inline int llm_mpi_bcast_bytes(void *buffer, int count, int root) { (void)buffer; (void)count; (void)root; return 0; }
static inline int llm_mpi_bcast_f32(float *buffer, int count, int root) { (void)buffer; (void)count; (void)root; return 0; }
static inline int llm_mpi_allgatherv_f32(float *buffer, const int *counts, const int *displacements) { (void)buffer; (void)counts; (void)displacements; return 0; }
static inline int llm_mpi_gatherv_f32(float *buffer, const int *counts, const int *displacements, int root) { (void)buffer; (void)counts; (void)displacements; (void)root; return 0; }
static inline void *llm_mpi_iallreduce_sum_f32(float *buffer, int count) { (void)buffer; (void)count; return NULL; }
static inline int llm_mpi_test(void *handle) { (void)handle; return 1; }
static inline int llm_mpi_wait(void *handle) { (void)handle; return 0; }

#endif
#endif
