// See device_c.h. Functions of ONNX Runtime are reached by their position in
// the OrtApi table. ONNX Runtime only ever appends to that table (each release
// adds entries after the last; none is moved or removed, which is what lets a
// program built against an old header run against a newer library), so the
// positions below, read off the table's declaration order, hold for every
// release at or after the one that introduced them. API version N of the
// table is ONNX Runtime 1.N.
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "device_c.h"

enum {
	// API 1 (ONNX Runtime 1.0).
	IRL_CreateStatus = 0,
	IRL_GetErrorCode = 1,
	IRL_GetErrorMessage = 2,
	IRL_CreateEnv = 3,
	IRL_CreateSession = 7,
	IRL_CreateSessionFromArray = 8,
	IRL_CreateSessionOptions = 10,
	IRL_SetOptimizedModelFilePath = 11,
	IRL_EnableProfiling = 14,
	IRL_SetIntraOpNumThreads = 24,
	IRL_SetInterOpNumThreads = 25,
	IRL_SessionGetInputCount = 30,
	IRL_SessionGetOutputCount = 31,
	IRL_SessionGetInputTypeInfo = 33,
	IRL_SessionGetOutputTypeInfo = 34,
	IRL_SessionGetInputName = 36,
	IRL_SessionGetOutputName = 37,
	IRL_CreateRunOptions = 39,
	IRL_CreateTensorAsOrtValue = 48,
	IRL_CreateTensorWithDataAsOrtValue = 49,
	IRL_GetTensorMutableData = 51,
	IRL_CastTypeInfoToTensorInfo = 55,
	IRL_GetTensorElementType = 60,
	IRL_GetDimensionsCount = 61,
	IRL_GetDimensions = 62,
	IRL_GetTensorTypeAndShape = 65,
	IRL_CreateMemoryInfo = 68,
	IRL_CreateCpuMemoryInfo = 69,
	IRL_MemoryInfoGetName = 71,
	IRL_MemoryInfoGetId = 72,
	IRL_AllocatorFree = 76,
	IRL_GetAllocatorWithDefaultOptions = 78,
	IRL_ReleaseStatus = 93,
	IRL_ReleaseMemoryInfo = 94,
	IRL_ReleaseSession = 95,
	IRL_ReleaseValue = 96,
	IRL_ReleaseRunOptions = 97,
	IRL_ReleaseTypeInfo = 98,
	IRL_ReleaseTensorTypeAndShapeInfo = 99,
	IRL_ReleaseSessionOptions = 100,
	// API 5 (ONNX Runtime 1.5): allocators and IoBinding.
	IRL_CreateAllocator = 131,
	IRL_ReleaseAllocator = 132,
	IRL_RunWithBinding = 133,
	IRL_CreateIoBinding = 134,
	IRL_ReleaseIoBinding = 135,
	IRL_BindInput = 136,
	IRL_BindOutput = 137,
	IRL_BindOutputToDevice = 138,
	IRL_GetBoundOutputNames = 139,
	IRL_GetBoundOutputValues = 140,
	IRL_ClearBoundInputs = 141,
	IRL_ClearBoundOutputs = 142,
	IRL_AddSessionConfigEntry = 130,
	IRL_CreateAndRegisterAllocator = 144,
	// API 10 (ONNX Runtime 1.10).
	IRL_GetTensorMemoryInfo = 194,
	IRL_SynchronizeBoundInputs = 202,
	IRL_SynchronizeBoundOutputs = 203,
	// API 11 (ONNX Runtime 1.11): CUDA provider options V2.
	IRL_SessionOptionsAppendExecutionProvider_CUDA_V2 = 204,
	IRL_CreateCUDAProviderOptions = 205,
	IRL_UpdateCUDAProviderOptions = 206,
	IRL_ReleaseCUDAProviderOptions = 208,
	// API 14 (ONNX Runtime 1.14).
	IRL_MemoryInfoGetDeviceType = 225,
};

// OrtApiBase is two function pointers: GetApi, then GetVersionString.
typedef const void *(*irl_get_api_fn)(uint32_t version);
typedef const char *(*irl_get_version_fn)(void);
typedef struct {
	irl_get_api_fn get_api;
	irl_get_version_fn get_version;
} irl_api_base;
typedef const irl_api_base *(*irl_get_api_base_fn)(void);

static const irl_api_base *base;
static void *const *api;
static irl_env *env;

// FN casts table entry i to the function type t.
#define FN(t, i) ((t)api[i])

const char *irl_open(const char *path, const char **err) {
	// RTLD_NOLOAD: only a library onnxruntime_go has loaded is acceptable,
	// so both layers share one ONNX Runtime. The handle is never closed: it
	// keeps the library mapped for as long as our objects may use it.
	void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	if (!h) {
		*err = dlerror();
		if (!*err) *err = "the library is not loaded";
		return NULL;
	}
	irl_get_api_base_fn get_base = (irl_get_api_base_fn)dlsym(h, "OrtGetApiBase");
	if (!get_base) {
		*err = dlerror();
		if (!*err) *err = "no OrtGetApiBase";
		return NULL;
	}
	base = get_base();
	if (!base || !base->get_api || !base->get_version) {
		*err = "OrtGetApiBase returned nothing";
		return NULL;
	}
	return base->get_version();
}

typedef irl_status *(*create_env_fn)(int level, const char *logid, irl_env **out);

irl_status *irl_load_api(uint32_t api_version, int *refused) {
	*refused = 0;
	api = (void *const *)base->get_api(api_version);
	if (!api) {
		*refused = 1;
		return NULL;
	}
	// CreateEnv hands out the process-wide OrtEnv, counting a reference; the
	// one onnxruntime_go created already exists, so its settings stay and ours
	// (level 3, errors only) are ignored. The reference is never released.
	return FN(create_env_fn, IRL_CreateEnv)(3, "irl", &env);
}

typedef irl_status *(*create_status_fn)(int code, const char *msg);
typedef int (*error_code_fn)(const irl_status *);
typedef const char *(*error_message_fn)(const irl_status *);
typedef void (*release_fn)(void *);

int irl_status_code(irl_status *st) { return FN(error_code_fn, IRL_GetErrorCode)(st); }
const char *irl_status_message(irl_status *st) { return FN(error_message_fn, IRL_GetErrorMessage)(st); }
void irl_status_release(irl_status *st) {
	if (st) FN(release_fn, IRL_ReleaseStatus)(st);
}

typedef irl_status *(*create_so_fn)(irl_session_options **);
typedef irl_status *(*set_threads_fn)(irl_session_options *, int);

irl_status *irl_session_options_create(int intra_threads, int inter_threads, irl_session_options **out) {
	irl_status *st = FN(create_so_fn, IRL_CreateSessionOptions)(out);
	if (st) return st;
	st = FN(set_threads_fn, IRL_SetIntraOpNumThreads)(*out, intra_threads);
	if (!st) st = FN(set_threads_fn, IRL_SetInterOpNumThreads)(*out, inter_threads);
	if (st) {
		FN(release_fn, IRL_ReleaseSessionOptions)(*out);
		*out = NULL;
	}
	return st;
}

typedef irl_status *(*so_fn)(irl_session_options *);

typedef irl_status *(*create_cuda_fn)(irl_cuda_options **);
typedef irl_status *(*update_cuda_fn)(irl_cuda_options *, const char *const *, const char *const *, size_t);
typedef irl_status *(*append_cuda_fn)(irl_session_options *, const irl_cuda_options *);

irl_status *irl_session_options_append_cuda(irl_session_options *so, const char *device_id, const char *use_tf32, const char *cuda_graph) {
	irl_cuda_options *co = NULL;
	irl_status *st = FN(create_cuda_fn, IRL_CreateCUDAProviderOptions)(&co);
	if (st) return st;
	const char *keys[] = {"device_id", "use_tf32", "enable_cuda_graph"};
	const char *vals[] = {device_id, use_tf32, cuda_graph};
	st = FN(update_cuda_fn, IRL_UpdateCUDAProviderOptions)(co, keys, vals, 3);
	if (!st) st = FN(append_cuda_fn, IRL_SessionOptionsAppendExecutionProvider_CUDA_V2)(so, co);
	FN(release_fn, IRL_ReleaseCUDAProviderOptions)(co);
	return st;
}

typedef irl_status *(*so_path_fn)(irl_session_options *, const char *);

irl_status *irl_session_options_enable_profiling(irl_session_options *so, const char *prefix) {
	return FN(so_path_fn, IRL_EnableProfiling)(so, prefix);
}

irl_status *irl_session_options_optimized_model(irl_session_options *so, const char *path) {
	return FN(so_path_fn, IRL_SetOptimizedModelFilePath)(so, path);
}

typedef irl_status *(*config_entry_fn)(irl_session_options *, const char *, const char *);

irl_status *irl_session_options_use_env_allocators(irl_session_options *so) {
	return FN(config_entry_fn, IRL_AddSessionConfigEntry)(so, "session.use_env_allocators", "1");
}

typedef irl_status *(*register_allocator_fn)(irl_env *, const irl_memory_info *, const void *arena_cfg);

irl_status *irl_register_cpu_arena(void) {
	irl_memory_info *m = NULL;
	irl_status *st = irl_memory_info_cpu(&m);
	if (st) return st;
	// A NULL arena configuration takes ONNX Runtime's defaults, those of a
	// session's own CPU arena.
	st = FN(register_allocator_fn, IRL_CreateAndRegisterAllocator)(env, m, NULL);
	irl_memory_info_release(m);
	return st;
}

void irl_session_options_release(irl_session_options *so) {
	if (so) FN(release_fn, IRL_ReleaseSessionOptions)(so);
}

typedef irl_status *(*create_session_array_fn)(const irl_env *, const void *, size_t, const irl_session_options *, irl_session **);
typedef irl_status *(*create_session_file_fn)(const irl_env *, const char *, const irl_session_options *, irl_session **);

irl_status *irl_session_create_from_array(const void *data, size_t len, irl_session_options *so, irl_session **out) {
	return FN(create_session_array_fn, IRL_CreateSessionFromArray)(env, data, len, so, out);
}

irl_status *irl_session_create_from_file(const char *path, irl_session_options *so, irl_session **out) {
	return FN(create_session_file_fn, IRL_CreateSession)(env, path, so, out);
}

void irl_session_release(irl_session *s) {
	if (s) FN(release_fn, IRL_ReleaseSession)(s);
}

typedef irl_status *(*create_run_options_fn)(irl_run_options **);

irl_status *irl_run_options_create(irl_run_options **out) {
	return FN(create_run_options_fn, IRL_CreateRunOptions)(out);
}

void irl_run_options_release(irl_run_options *ro) {
	if (ro) FN(release_fn, IRL_ReleaseRunOptions)(ro);
}

typedef irl_status *(*io_count_fn)(const irl_session *, size_t *);
typedef irl_status *(*io_name_fn)(const irl_session *, size_t, irl_allocator *, char **);
typedef irl_status *(*io_type_fn)(const irl_session *, size_t, irl_type_info **);
typedef irl_status *(*cast_tensor_info_fn)(const irl_type_info *, const irl_tensor_info **);
typedef irl_status *(*elem_type_fn)(const irl_tensor_info *, int *);
typedef irl_status *(*dims_count_fn)(const irl_tensor_info *, size_t *);
typedef irl_status *(*dims_fn)(const irl_tensor_info *, int64_t *, size_t);
typedef irl_status *(*default_allocator_fn)(irl_allocator **);
typedef irl_status *(*allocator_free_fn)(irl_allocator *, void *);

irl_status *irl_session_io_count(irl_session *s, int output, size_t *out) {
	return FN(io_count_fn, output ? IRL_SessionGetOutputCount : IRL_SessionGetInputCount)(s, out);
}

irl_status *irl_session_io_name(irl_session *s, int output, size_t i, char **name) {
	irl_allocator *a = NULL;
	irl_status *st = FN(default_allocator_fn, IRL_GetAllocatorWithDefaultOptions)(&a);
	if (st) return st;
	char *ort_name = NULL;
	st = FN(io_name_fn, output ? IRL_SessionGetOutputName : IRL_SessionGetInputName)(s, i, a, &ort_name);
	if (st) return st;
	*name = strdup(ort_name);
	return FN(allocator_free_fn, IRL_AllocatorFree)(a, ort_name);
}

// shape_of reads a tensor type-and-shape info's element type and dimensions.
static irl_status *shape_of(const irl_tensor_info *ti, int *elem_type, int64_t *dims, size_t max_dims, int *rank) {
	irl_status *st = FN(elem_type_fn, IRL_GetTensorElementType)(ti, elem_type);
	if (st) return st;
	size_t n = 0;
	st = FN(dims_count_fn, IRL_GetDimensionsCount)(ti, &n);
	if (st) return st;
	*rank = (int)n;
	if (n > max_dims) n = max_dims;
	return n ? FN(dims_fn, IRL_GetDimensions)(ti, dims, n) : NULL;
}

irl_status *irl_session_io_type(irl_session *s, int output, size_t i, int *elem_type, int64_t *dims, size_t max_dims, int *rank) {
	irl_type_info *t = NULL;
	irl_status *st = FN(io_type_fn, output ? IRL_SessionGetOutputTypeInfo : IRL_SessionGetInputTypeInfo)(s, i, &t);
	if (st) return st;
	const irl_tensor_info *ti = NULL; // owned by t
	st = FN(cast_tensor_info_fn, IRL_CastTypeInfoToTensorInfo)(t, &ti);
	*rank = -1;
	*elem_type = 0;
	if (!st && ti) st = shape_of(ti, elem_type, dims, max_dims, rank);
	FN(release_fn, IRL_ReleaseTypeInfo)(t);
	return st;
}

typedef irl_status *(*cpu_info_fn)(int alloc_type, int mem_type, irl_memory_info **);
typedef irl_status *(*create_info_fn)(const char *, int alloc_type, int id, int mem_type, irl_memory_info **);

// OrtAllocatorType 1 is the arena allocator; OrtMemType 0 the device's own
// memory. These are what onnxruntime_go uses for CPU tensors too.
irl_status *irl_memory_info_cpu(irl_memory_info **out) {
	return FN(cpu_info_fn, IRL_CreateCpuMemoryInfo)(1, 0, out);
}

irl_status *irl_memory_info_create(const char *name, int device_id, irl_memory_info **out) {
	return FN(create_info_fn, IRL_CreateMemoryInfo)(name, 1, device_id, 0, out);
}

void irl_memory_info_release(irl_memory_info *m) {
	if (m) FN(release_fn, IRL_ReleaseMemoryInfo)(m);
}

irl_status *irl_allocator_default(irl_allocator **out) {
	return FN(default_allocator_fn, IRL_GetAllocatorWithDefaultOptions)(out);
}

typedef irl_status *(*create_allocator_fn)(const irl_session *, const irl_memory_info *, irl_allocator **);

irl_status *irl_allocator_create(irl_session *s, const irl_memory_info *m, irl_allocator **out) {
	return FN(create_allocator_fn, IRL_CreateAllocator)(s, m, out);
}

void irl_allocator_release(irl_allocator *a) {
	if (a) FN(release_fn, IRL_ReleaseAllocator)(a);
}

typedef irl_status *(*tensor_alloc_fn)(irl_allocator *, const int64_t *, size_t, int, irl_value **);
typedef irl_status *(*tensor_over_fn)(const irl_memory_info *, void *, size_t, const int64_t *, size_t, int, irl_value **);

irl_status *irl_tensor_alloc(irl_allocator *a, const int64_t *shape, size_t rank, int elem_type, irl_value **out) {
	return FN(tensor_alloc_fn, IRL_CreateTensorAsOrtValue)(a, shape, rank, elem_type, out);
}

irl_status *irl_tensor_over(const irl_memory_info *m, void *data, size_t bytes, const int64_t *shape, size_t rank, int elem_type, irl_value **out) {
	return FN(tensor_over_fn, IRL_CreateTensorWithDataAsOrtValue)(m, data, bytes, shape, rank, elem_type, out);
}

void irl_value_release(irl_value *v) {
	if (v) FN(release_fn, IRL_ReleaseValue)(v);
}

typedef irl_status *(*type_and_shape_fn)(const irl_value *, irl_tensor_info **);
typedef irl_status *(*mutable_data_fn)(irl_value *, void **);
typedef irl_status *(*tensor_mem_info_fn)(const irl_value *, const irl_memory_info **);
typedef irl_status *(*mem_name_fn)(const irl_memory_info *, const char **);
typedef irl_status *(*mem_id_fn)(const irl_memory_info *, int *);
typedef void (*mem_device_type_fn)(const irl_memory_info *, int *);

irl_status *irl_tensor_memory_info(irl_value *v, const irl_memory_info **out) {
	return FN(tensor_mem_info_fn, IRL_GetTensorMemoryInfo)(v, out);
}

irl_status *irl_tensor_describe(irl_value *v, int *elem_type, int64_t *dims, size_t max_dims, int *rank,
                                void **data, int *device_type, int *device_id, const char **mem_name) {
	irl_tensor_info *ti = NULL;
	irl_status *st = FN(type_and_shape_fn, IRL_GetTensorTypeAndShape)(v, &ti);
	if (st) return st;
	st = shape_of(ti, elem_type, dims, max_dims, rank);
	FN(release_fn, IRL_ReleaseTensorTypeAndShapeInfo)(ti);
	if (st) return st;
	st = FN(mutable_data_fn, IRL_GetTensorMutableData)(v, data);
	if (st) return st;
	const irl_memory_info *m = NULL; // owned by v
	st = FN(tensor_mem_info_fn, IRL_GetTensorMemoryInfo)(v, &m);
	if (st) return st;
	FN(mem_device_type_fn, IRL_MemoryInfoGetDeviceType)(m, device_type);
	st = FN(mem_id_fn, IRL_MemoryInfoGetId)(m, device_id);
	if (st) return st;
	return FN(mem_name_fn, IRL_MemoryInfoGetName)(m, mem_name);
}

typedef irl_status *(*create_binding_fn)(irl_session *, irl_binding **);
typedef irl_status *(*bind_fn)(irl_binding *, const char *, const irl_value *);
typedef irl_status *(*bind_device_fn)(irl_binding *, const char *, const irl_memory_info *);
typedef irl_status *(*run_binding_fn)(irl_session *, const irl_run_options *, const irl_binding *);
typedef irl_status *(*sync_fn)(irl_binding *);
typedef void (*clear_fn)(irl_binding *);
typedef irl_status *(*bound_names_fn)(const irl_binding *, irl_allocator *, char **, size_t **, size_t *);
typedef irl_status *(*bound_values_fn)(const irl_binding *, irl_allocator *, irl_value ***, size_t *);

irl_status *irl_binding_create(irl_session *s, irl_binding **out) {
	return FN(create_binding_fn, IRL_CreateIoBinding)(s, out);
}

void irl_binding_release(irl_binding *b) {
	if (b) FN(release_fn, IRL_ReleaseIoBinding)(b);
}

irl_status *irl_bind_input(irl_binding *b, const char *name, const irl_value *v) {
	return FN(bind_fn, IRL_BindInput)(b, name, v);
}

irl_status *irl_bind_output(irl_binding *b, const char *name, const irl_value *v) {
	return FN(bind_fn, IRL_BindOutput)(b, name, v);
}

irl_status *irl_bind_output_to_device(irl_binding *b, const char *name, const irl_memory_info *m) {
	return FN(bind_device_fn, IRL_BindOutputToDevice)(b, name, m);
}

irl_status *irl_run_with_binding(irl_session *s, const irl_run_options *ro, const irl_binding *b) {
	return FN(run_binding_fn, IRL_RunWithBinding)(s, ro, b);
}

irl_status *irl_synchronize_inputs(irl_binding *b) { return FN(sync_fn, IRL_SynchronizeBoundInputs)(b); }
irl_status *irl_synchronize_outputs(irl_binding *b) { return FN(sync_fn, IRL_SynchronizeBoundOutputs)(b); }
void irl_clear_inputs(irl_binding *b) { FN(clear_fn, IRL_ClearBoundInputs)(b); }
void irl_clear_outputs(irl_binding *b) { FN(clear_fn, IRL_ClearBoundOutputs)(b); }

irl_status *irl_bound_outputs(irl_binding *b, char **names_block, size_t *count, irl_value ***values) {
	*names_block = NULL;
	*values = NULL;
	*count = 0;
	irl_allocator *a = NULL;
	irl_status *st = FN(default_allocator_fn, IRL_GetAllocatorWithDefaultOptions)(&a);
	if (st) return st;
	char *buf = NULL;
	size_t *lens = NULL, n = 0;
	st = FN(bound_names_fn, IRL_GetBoundOutputNames)(b, a, &buf, &lens, &n);
	if (st) return st;
	if (n == 0) return NULL; // ONNX Runtime allocates nothing then
	size_t total = 0;
	for (size_t i = 0; i < n; i++) total += lens[i] + 1;
	char *block = malloc(total);
	if (block) {
		char *p = block, *q = buf;
		for (size_t i = 0; i < n; i++) {
			memcpy(p, q, lens[i]);
			p[lens[i]] = 0;
			p += lens[i] + 1;
			q += lens[i];
		}
	}
	FN(allocator_free_fn, IRL_AllocatorFree)(a, buf);
	FN(allocator_free_fn, IRL_AllocatorFree)(a, lens);
	if (!block) return FN(create_status_fn, IRL_CreateStatus)(1, "out of memory listing bound outputs");
	irl_value **ort_vals = NULL;
	size_t nv = 0;
	st = FN(bound_values_fn, IRL_GetBoundOutputValues)(b, a, &ort_vals, &nv);
	if (st) {
		free(block);
		return st;
	}
	irl_value **vals = malloc(nv * sizeof(*vals));
	if (!vals || nv != n) {
		for (size_t i = 0; i < nv; i++) FN(release_fn, IRL_ReleaseValue)(ort_vals[i]);
		FN(allocator_free_fn, IRL_AllocatorFree)(a, ort_vals);
		free(vals);
		free(block);
		return FN(create_status_fn, IRL_CreateStatus)(1, "bound output names and values disagree");
	}
	memcpy(vals, ort_vals, nv * sizeof(*vals));
	FN(allocator_free_fn, IRL_AllocatorFree)(a, ort_vals);
	*names_block = block;
	*values = vals;
	*count = n;
	return NULL;
}
