// The one C header of the project: OpenBLAS's CBLAS interface (pkg-config `openblas`).
#include <cblas.h>
