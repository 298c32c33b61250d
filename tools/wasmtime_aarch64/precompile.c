/*
 * precompile: compile one .wasm file with Wasmtime's C API (Cranelift) for
 * the machine it runs on and write the serialized artifact (an ELF .cwasm).
 *
 *   precompile [-t TRIPLE] [-b] IN.wasm OUT.cwasm
 *
 * Built for aarch64 and run under qemu-aarch64 against the aarch64
 * libwasmtime from the `wasmtime` PyPI wheel, this gives Cranelift's own
 * AArch64 code (see measure.py).
 *
 *   -t TRIPLE  set Wasmtime's target explicitly (no host CPU feature detection)
 *   -b         explicit bounds checks: memory reservation and guard size 0,
 *              so linear-memory accesses are checked in code instead of by
 *              guard pages
 *
 * The few C-API entry points used are declared here (opaque handles), so no
 * Wasmtime headers are needed.  Settings are Wasmtime's defaults except:
 * Cranelift opt level "speed" (the default, set explicitly) and serial
 * compilation (as wasmlower compiles on one thread; no effect on the code).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct wasm_config_t wasm_config_t;
typedef struct wasm_engine_t wasm_engine_t;
typedef struct wasmtime_module wasmtime_module_t;
typedef struct wasmtime_error wasmtime_error_t;
typedef struct {
    size_t size;
    uint8_t *data;
} byte_vec;

enum { OPT_LEVEL_SPEED = 1 };

extern wasm_config_t *wasm_config_new(void);
extern void wasmtime_config_cranelift_opt_level_set(wasm_config_t *, uint8_t);
extern void wasmtime_config_parallel_compilation_set(wasm_config_t *, bool);
extern wasmtime_error_t *wasmtime_config_target_set(wasm_config_t *, const char *);
extern void wasmtime_config_memory_reservation_set(wasm_config_t *, uint64_t);
extern void wasmtime_config_memory_guard_size_set(wasm_config_t *, uint64_t);
extern wasm_engine_t *wasm_engine_new_with_config(wasm_config_t *);
extern void wasm_engine_delete(wasm_engine_t *);
extern wasmtime_error_t *wasmtime_module_new(wasm_engine_t *, const uint8_t *, size_t,
                                             wasmtime_module_t **);
extern wasmtime_error_t *wasmtime_module_serialize(wasmtime_module_t *, byte_vec *);
extern void wasmtime_module_delete(wasmtime_module_t *);
extern void wasmtime_error_message(const wasmtime_error_t *, byte_vec *);
extern void wasmtime_error_delete(wasmtime_error_t *);
extern void wasm_byte_vec_delete(byte_vec *);

static int fail(const char *what, wasmtime_error_t *err) {
    byte_vec msg = {0, NULL};
    wasmtime_error_message(err, &msg);
    fprintf(stderr, "precompile: %s: %.*s\n", what, (int)msg.size, (const char *)msg.data);
    wasm_byte_vec_delete(&msg);
    wasmtime_error_delete(err);
    return 1;
}

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    uint8_t *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    *len = n;
    return buf;
}

int main(int argc, char **argv) {
    const char *triple = NULL;
    bool explicit_bounds = false;
    int opt, bad = 0;
    while ((opt = getopt(argc, argv, "t:b")) != -1) {
        if (opt == 't')
            triple = optarg;
        else if (opt == 'b')
            explicit_bounds = true;
        else
            bad = 1;
    }
    if (bad || argc - optind != 2) {
        fprintf(stderr, "usage: precompile [-t TRIPLE] [-b] IN.wasm OUT.cwasm\n");
        return 2;
    }
    const char *in_path = argv[optind], *out_path = argv[optind + 1];
    size_t len;
    uint8_t *wasm = read_file(in_path, &len);
    if (!wasm) {
        perror(in_path);
        return 1;
    }
    wasm_config_t *config = wasm_config_new();
    wasmtime_config_cranelift_opt_level_set(config, OPT_LEVEL_SPEED);
    wasmtime_config_parallel_compilation_set(config, false);
    if (explicit_bounds) {
        wasmtime_config_memory_reservation_set(config, 0);
        wasmtime_config_memory_guard_size_set(config, 0);
    }
    if (triple) {
        wasmtime_error_t *err = wasmtime_config_target_set(config, triple);
        if (err) return fail("target", err);
    }
    wasm_engine_t *engine = wasm_engine_new_with_config(config);
    if (!engine) {
        fprintf(stderr, "precompile: the engine configuration was rejected\n");
        return 1;
    }
    wasmtime_module_t *module = NULL;
    wasmtime_error_t *err = wasmtime_module_new(engine, wasm, len, &module);
    if (err) return fail("compile", err);
    byte_vec out = {0, NULL};
    err = wasmtime_module_serialize(module, &out);
    if (err) return fail("serialize", err);
    FILE *f = fopen(out_path, "wb");
    if (!f || fwrite(out.data, 1, out.size, f) != out.size || fclose(f) != 0) {
        perror(out_path);
        return 1;
    }
    wasm_byte_vec_delete(&out);
    wasmtime_module_delete(module);
    wasm_engine_delete(engine);
    free(wasm);
    return 0;
}
