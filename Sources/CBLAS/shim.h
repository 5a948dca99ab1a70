// The one C header of the project: OpenBLAS's CBLAS interface (pkg-config `openblas`).
#include <cblas.h>

// LAPACK's Cholesky factorization and the inverse from it (OpenBLAS ships LAPACK), column-major,
// for GPTQ's inverse Hessian.
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);
