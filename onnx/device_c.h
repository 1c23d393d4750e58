// A thin C layer over ONNX Runtime's C API for what onnxruntime_go does not
// expose: IoBinding with device outputs, device memory info, allocators and
// tensors allocated by ONNX Runtime. It reaches ONNX Runtime through the
// OrtApi function table of the library onnxruntime_go has already loaded.
//
// Every ONNX Runtime type is opaque here: only pointers to them cross this
// layer, so none of ONNX Runtime's declarations are needed, and our own
// struct tags make that plain.
#ifndef IRL_ONNX_DEVICE_C_H
#define IRL_ONNX_DEVICE_C_H

#include <stddef.h>
#include <stdint.h>

typedef struct irl_status irl_status;
typedef struct irl_env irl_env;
typedef struct irl_session irl_session;
typedef struct irl_session_options irl_session_options;
typedef struct irl_run_options irl_run_options;
typedef struct irl_value irl_value;
typedef struct irl_memory_info irl_memory_info;
typedef struct irl_allocator irl_allocator;
typedef struct irl_binding irl_binding;
typedef struct irl_type_info irl_type_info;
typedef struct irl_tensor_info irl_tensor_info;
typedef struct irl_cuda_options irl_cuda_options;

// irl_open finds OrtGetApiBase in the already loaded library at path. It
// returns the library's version string, or NULL with *err set to dlerror's
// message (or a fixed one) when the library is not loaded or has no entry
// point. It never loads a library that is not already loaded.
const char *irl_open(const char *path, const char **err);

// irl_load_api fetches the OrtApi table for api_version (after irl_open) and
// takes a reference to the process-wide OrtEnv. It returns NULL on success,
// else a status (or, when GetApi refuses the version, sets *refused).
irl_status *irl_load_api(uint32_t api_version, int *refused);

// Status inspection. irl_status_message copies nothing: use it before
// irl_status_release.
int irl_status_code(irl_status *st);
const char *irl_status_message(irl_status *st);
void irl_status_release(irl_status *st);

// Session options and sessions.
irl_status *irl_session_options_create(int intra_threads, int inter_threads, irl_session_options **out);
irl_status *irl_session_options_append_cuda(irl_session_options *so, const char *device_id, const char *use_tf32, const char *cuda_graph);
void irl_session_options_release(irl_session_options *so);
// Profiling (a JSON file per session, named from prefix, written when the
// session is released) and the path the optimised graph is written to.
irl_status *irl_session_options_enable_profiling(irl_session_options *so, const char *prefix);
irl_status *irl_session_options_optimized_model(irl_session_options *so, const char *path);
// irl_register_cpu_arena registers one CPU arena allocator with the
// environment; sessions whose options went through
// irl_session_options_use_env_allocators share it instead of growing one
// arena each.
irl_status *irl_register_cpu_arena(void);
irl_status *irl_session_options_use_env_allocators(irl_session_options *so);
irl_status *irl_session_create_from_array(const void *data, size_t len, irl_session_options *so, irl_session **out);
irl_status *irl_session_create_from_file(const char *path, irl_session_options *so, irl_session **out);
void irl_session_release(irl_session *s);
irl_status *irl_run_options_create(irl_run_options **out);
void irl_run_options_release(irl_run_options *ro);

// Session inputs and outputs. Names are copied into a malloc'd string the
// caller frees with free(). elem_type is ONNX's element type, rank -1 when
// the value is not a tensor; dims receives at most max_dims entries.
irl_status *irl_session_io_count(irl_session *s, int output, size_t *out);
irl_status *irl_session_io_name(irl_session *s, int output, size_t i, char **name);
irl_status *irl_session_io_type(irl_session *s, int output, size_t i, int *elem_type, int64_t *dims, size_t max_dims, int *rank);

// Memory info and allocators.
irl_status *irl_memory_info_cpu(irl_memory_info **out);
irl_status *irl_memory_info_create(const char *name, int device_id, irl_memory_info **out);
void irl_memory_info_release(irl_memory_info *m);
irl_status *irl_allocator_default(irl_allocator **out);
irl_status *irl_allocator_create(irl_session *s, const irl_memory_info *m, irl_allocator **out);
void irl_allocator_release(irl_allocator *a);

// Tensors.
irl_status *irl_tensor_alloc(irl_allocator *a, const int64_t *shape, size_t rank, int elem_type, irl_value **out);
irl_status *irl_tensor_over(const irl_memory_info *m, void *data, size_t bytes, const int64_t *shape, size_t rank, int elem_type, irl_value **out);
void irl_value_release(irl_value *v);
// irl_tensor_describe reports a tensor's element type, rank (dims receives
// at most max_dims), data pointer, where its memory is (device_type 0 for
// CPU, 1 for GPU, as OrtMemoryInfoDeviceType), its device id and the memory
// info's name (owned by the value).
irl_status *irl_tensor_describe(irl_value *v, int *elem_type, int64_t *dims, size_t max_dims, int *rank,
                                void **data, int *device_type, int *device_id, const char **mem_name);
irl_status *irl_tensor_memory_info(irl_value *v, const irl_memory_info **out);

// IoBinding.
irl_status *irl_binding_create(irl_session *s, irl_binding **out);
void irl_binding_release(irl_binding *b);
irl_status *irl_bind_input(irl_binding *b, const char *name, const irl_value *v);
irl_status *irl_bind_output(irl_binding *b, const char *name, const irl_value *v);
irl_status *irl_bind_output_to_device(irl_binding *b, const char *name, const irl_memory_info *m);
irl_status *irl_run_with_binding(irl_session *s, const irl_run_options *ro, const irl_binding *b);
irl_status *irl_synchronize_inputs(irl_binding *b);
irl_status *irl_synchronize_outputs(irl_binding *b);
void irl_clear_inputs(irl_binding *b);
void irl_clear_outputs(irl_binding *b);
// irl_bound_outputs returns the bound output names (each NUL-terminated,
// in one malloc'd block the caller frees, with *names pointing into it) and
// values (a malloc'd array the caller frees; each value is the caller's to
// release), in binding order.
irl_status *irl_bound_outputs(irl_binding *b, char **names_block, size_t *count, irl_value ***values);

#endif
