"""Stand-in for pyACL (`import acl`, AscendCL's Python API), to run a generated app on the host.

Only the calls of Ascend/samples sampleResnetAIPP.py (python) exist, with their return conventions:
functions that create return (handle, ret), the others ret; 0 is ACL_SUCCESS. Device memory is real host
memory behind ctypes addresses, so copies are byte-exact and bounds are checked: acl.rt.memcpy refuses a copy
larger than its destination or from/to an address it did not allocate (ACL_ERROR_INVALID_PARAM), and
acl.mdl.execute refuses a dataset whose buffers do not match the model's input sizes. Every allocation is
counted (`STATS`, written to $MATTECONV_SIM_STATS/acl.json at exit): how many happened before the first
execute, how many in all, and how many were still live at exit. util.bytes_to_ptr returns the address of the
bytes object's own buffer (no copy), as the real one does: the caller keeps the bytes alive.
"""
import atexit
import ctypes

import numpy as np

from matteconv.deploy import simhost

ACL_SUCCESS = 0
ACL_ERROR_INVALID_PARAM = 100000
ACL_ERROR_REPEAT_INITIALIZE = 100002
ACL_ERROR_INVALID_FILE = 100003
ACL_ERROR_INVALID_MODEL_ID = 100008
ACL_ERROR_UNINITIALIZE = 100013
ACL_FLOAT, ACL_FLOAT16, ACL_UINT8 = 0, 1, 4
_DTYPE_CODE = {"float32": ACL_FLOAT, "float16": ACL_FLOAT16, "uint8": ACL_UINT8}

STATS = {"init": 0, "finalize": 0, "executes": 0, "allocations": 0, "allocations_before_first_execute": None,
         "frees": 0, "live_at_exit": 0, "calls": {}}
simhost.stats_writer("acl", STATS)

_state = {"initialised": False, "device": None}
_device_mem = {}  # address -> ctypes buffer (acl.rt.malloc)
_host_mem = {}  # address -> ctypes buffer (acl.rt.malloc_host)
_models = {}
_handles = {}


def _count(name, allocation=False):
    STATS["calls"][name] = STATS["calls"].get(name, 0) + 1
    if allocation:
        STATS["allocations"] += 1


def _live():
    return len(_device_mem) + len(_host_mem) + len(_handles) + len(_models)


def _new_handle(obj):
    key = id(obj)
    _handles[key] = obj
    return key


def _block(addr, size, pools):
    """(pool, buffer) when [addr, addr+size) lies inside one allocation of the given pools, else None."""
    for pool in pools:
        for start, buf in pool.items():
            if start <= addr and addr + size <= start + ctypes.sizeof(buf):
                return pool, buf
    return None


def init(config_path=None):
    _count("init")
    if _state["initialised"]:
        return ACL_ERROR_REPEAT_INITIALIZE
    _state["initialised"] = True
    STATS["init"] += 1
    return ACL_SUCCESS


def finalize():
    _count("finalize")
    _state["initialised"] = False
    STATS["finalize"] += 1
    return ACL_SUCCESS


class _DataBuffer(object):
    def __init__(self, addr, size):
        self.addr, self.size = addr, size


def create_data_buffer(data, size):
    _count("create_data_buffer", allocation=True)
    return _new_handle(_DataBuffer(data, size))


def destroy_data_buffer(buf):
    _count("destroy_data_buffer")
    STATS["frees"] += int(_handles.pop(buf, None) is not None)
    return ACL_SUCCESS


def get_data_buffer_addr(buf):
    return _handles[buf].addr


def get_data_buffer_size(buf):
    return _handles[buf].size


get_data_buffer_size_v2 = get_data_buffer_size


class rt(object):
    @staticmethod
    def set_device(device_id):
        _count("rt.set_device")
        if not _state["initialised"]:
            return ACL_ERROR_UNINITIALIZE
        _state["device"] = device_id
        return ACL_SUCCESS

    @staticmethod
    def reset_device(device_id):
        _count("rt.reset_device")
        _state["device"] = None
        return ACL_SUCCESS

    @staticmethod
    def create_context(device_id):
        _count("rt.create_context", allocation=True)
        return _new_handle(object()), ACL_SUCCESS

    @staticmethod
    def destroy_context(context):
        _count("rt.destroy_context")
        STATS["frees"] += int(_handles.pop(context, None) is not None)
        return ACL_SUCCESS

    @staticmethod
    def create_stream():
        _count("rt.create_stream", allocation=True)
        return _new_handle(object()), ACL_SUCCESS

    @staticmethod
    def destroy_stream(stream):
        _count("rt.destroy_stream")
        STATS["frees"] += int(_handles.pop(stream, None) is not None)
        return ACL_SUCCESS

    @staticmethod
    def malloc(size, policy=0):
        _count("rt.malloc", allocation=True)
        if _state["device"] is None or size <= 0:
            return 0, ACL_ERROR_INVALID_PARAM
        buf = ctypes.create_string_buffer(int(size))
        _device_mem[ctypes.addressof(buf)] = buf
        return ctypes.addressof(buf), ACL_SUCCESS

    @staticmethod
    def malloc_host(size):
        _count("rt.malloc_host", allocation=True)
        buf = ctypes.create_string_buffer(int(size))
        _host_mem[ctypes.addressof(buf)] = buf
        return ctypes.addressof(buf), ACL_SUCCESS

    @staticmethod
    def free(ptr):
        _count("rt.free")
        STATS["frees"] += int(_device_mem.pop(ptr, None) is not None)
        return ACL_SUCCESS

    @staticmethod
    def free_host(ptr):
        _count("rt.free_host")
        STATS["frees"] += int(_host_mem.pop(ptr, None) is not None)
        return ACL_SUCCESS

    @staticmethod
    def memcpy(dst, dst_size, src, count, kind):
        """kind 1: host -> device, 2: device -> host. The source of a host copy may be any live host address
        (bytes_to_ptr); device addresses must come from rt.malloc, host destinations from rt.malloc_host."""
        _count("rt.memcpy")
        if count > dst_size or count <= 0:
            return ACL_ERROR_INVALID_PARAM
        if kind == 1:
            if _block(dst, dst_size, [_device_mem]) is None:
                return ACL_ERROR_INVALID_PARAM
        elif kind == 2:
            if _block(src, count, [_device_mem]) is None or _block(dst, dst_size, [_host_mem]) is None:
                return ACL_ERROR_INVALID_PARAM
        else:
            return ACL_ERROR_INVALID_PARAM
        ctypes.memmove(dst, src, count)
        return ACL_SUCCESS


class util(object):
    @staticmethod
    def bytes_to_ptr(data):
        return ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value

    @staticmethod
    def ptr_to_bytes(ptr, size):
        return ctypes.string_at(ptr, size)


class _Desc(object):
    def __init__(self):
        self.model = None


class _Dataset(object):
    def __init__(self):
        self.buffers = []


class mdl(object):
    @staticmethod
    def load_from_file(path):
        _count("mdl.load_from_file", allocation=True)
        if not _state["initialised"] or _state["device"] is None:
            return 0, ACL_ERROR_UNINITIALIZE
        try:
            model = simhost.device_model(path)
        except Exception as e:  # one line, as the runtime's log would say
            import sys

            sys.stderr.write("[acl stand-in] load_from_file({}): {}\n".format(path, e))
            return 0, ACL_ERROR_INVALID_FILE
        model_id = len(_models) + 1
        _models[model_id] = model
        return model_id, ACL_SUCCESS

    @staticmethod
    def unload(model_id):
        _count("mdl.unload")
        STATS["frees"] += int(_models.pop(model_id, None) is not None)
        return ACL_SUCCESS

    @staticmethod
    def create_desc():
        _count("mdl.create_desc", allocation=True)
        return _new_handle(_Desc())

    @staticmethod
    def destroy_desc(desc):
        _count("mdl.destroy_desc")
        STATS["frees"] += int(_handles.pop(desc, None) is not None)
        return ACL_SUCCESS

    @staticmethod
    def get_desc(desc, model_id):
        if model_id not in _models:
            return ACL_ERROR_INVALID_MODEL_ID
        _handles[desc].model = _models[model_id]
        return ACL_SUCCESS

    @staticmethod
    def get_num_inputs(desc):
        return len(_handles[desc].model.inputs)

    @staticmethod
    def get_num_outputs(desc):
        return len(_handles[desc].model.outputs)

    @staticmethod
    def get_input_size_by_index(desc, i):
        return _handles[desc].model.inputs[i].nbytes

    @staticmethod
    def get_output_size_by_index(desc, i):
        return _handles[desc].model.outputs[i].nbytes

    @staticmethod
    def get_output_data_type(desc, i):
        return _DTYPE_CODE[_handles[desc].model.outputs[i].dtype]

    @staticmethod
    def get_input_dims(desc, i):
        t = _handles[desc].model.inputs[i]
        return {"name": t.name, "dimCount": len(t.shape), "dims": list(t.shape)}, ACL_SUCCESS

    @staticmethod
    def get_output_dims(desc, i):
        t = _handles[desc].model.outputs[i]
        return {"name": t.name, "dimCount": len(t.shape), "dims": list(t.shape)}, ACL_SUCCESS

    get_cur_output_dims = get_output_dims

    @staticmethod
    def create_dataset():
        _count("mdl.create_dataset", allocation=True)
        return _new_handle(_Dataset())

    @staticmethod
    def destroy_dataset(dataset):
        _count("mdl.destroy_dataset")
        STATS["frees"] += int(_handles.pop(dataset, None) is not None)
        return ACL_SUCCESS

    @staticmethod
    def add_dataset_buffer(dataset, buf):
        _handles[dataset].buffers.append(buf)
        return dataset, ACL_SUCCESS

    @staticmethod
    def get_dataset_num_buffers(dataset):
        return len(_handles[dataset].buffers)

    @staticmethod
    def get_dataset_buffer(dataset, i):
        return _handles[dataset].buffers[i]

    @staticmethod
    def execute(model_id, inputs, outputs):
        _count("mdl.execute")
        model = _models.get(model_id)
        if model is None:
            return ACL_ERROR_INVALID_MODEL_ID
        if STATS["allocations_before_first_execute"] is None:
            STATS["allocations_before_first_execute"] = STATS["allocations"]
        ins = [_handles[b] for b in _handles[inputs].buffers]
        outs = [_handles[b] for b in _handles[outputs].buffers]
        if len(ins) != len(model.inputs) or any(b.size != t.nbytes for b, t in zip(ins, model.inputs)) or \
                len(outs) != len(model.outputs) or any(b.size != t.nbytes for b, t in zip(outs, model.outputs)):
            return ACL_ERROR_INVALID_PARAM
        raw = [np.frombuffer(ctypes.string_at(b.addr, b.size), np.uint8) for b in ins]
        for b, y in zip(outs, model.run(raw)):
            data = np.ascontiguousarray(y).tobytes()
            ctypes.memmove(b.addr, data, len(data))
        STATS["executes"] += 1
        return ACL_SUCCESS


atexit.register(lambda: STATS.update(live_at_exit=_live()))  # runs before simhost writes STATS (LIFO)
