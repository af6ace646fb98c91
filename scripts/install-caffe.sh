#!/usr/bin/env bash
# Build real pycaffe (brocolli-caffe 9.0.2, CPU) and install it into the project venv.
# Why a script: the PyPI sdist does not build on Debian 12 / CPython 3.11 as shipped (conda and
# python<=3.9 guards, gcc-12 version misparse, conda include paths, stale caffe_pb2). See DESIGN.md s3.
# The wheel is cached outside the repo, so a second run only reinstalls it (seconds).
set -euo pipefail
VENV=${VENV:-.venv}
WORK=$(realpath -m "${WORK:-build/caffe-src}")
WHEELHOUSE=${WHEELHOUSE:-$HOME/.cache/matteconv/wheels}
WHL="$WHEELHOUSE/brocolli_caffe-9.0.2-cp311-cp311-linux_x86_64.whl"
PY="$VENV/bin/python"

if GLOG_minloglevel=2 "$PY" -c "import caffe" 2>/dev/null; then
  echo "pycaffe already installed in $VENV"; exit 0
fi

APT_PKGS="build-essential cmake protobuf-compiler libprotobuf-dev libboost-python-dev libboost-system-dev
  libboost-thread-dev libboost-filesystem-dev libboost-regex-dev libgoogle-glog-dev libgflags-dev
  libhdf5-dev libopenblas-dev libgtest-dev"
missing=$(dpkg-query -W -f='${Status} ${Package}\n' $APT_PKGS 2>/dev/null | grep -vc '^install ok installed' || true)
if [ "$missing" != "0" ] || [ "$(dpkg-query -W -f='${Package}\n' $APT_PKGS 2>/dev/null | wc -l)" -lt 15 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $APT_PKGS >/dev/null
fi

"$VENV/bin/pip" install -q numpy scikit-image six protobuf

if [ ! -f "$WHL" ]; then
  echo "building pycaffe wheel (about 4 minutes on 2 cores)..."
  rm -rf "$WORK" && mkdir -p "$WORK" "$WHEELHOUSE"
  "$VENV/bin/pip" download -q --no-deps --no-binary :all: brocolli-caffe==9.0.2 -d "$WORK"
  tar -xzf "$WORK"/brocolli-caffe-9.0.2.tar.gz -C "$WORK"
  SRC="$WORK/brocolli-caffe-9.0.2"
  sed -i -e "s/\['conda', '--version'\]/['true']/" \
         -e "s/sys.version_info.minor > 9 /sys.version_info.minor > 99 /" \
         -e "s/int(out\[0\]) < 5/int(out.split('.')[0]) < 5/" \
         -e "s/if subprocess.call(install_command) != 0:/if False:/" "$SRC/setup.py"
  protoc --proto_path="$SRC/src" --python_out="$SRC/python" "$SRC/src/caffe/proto/caffe.proto"
  mkdir -p "$WORK/linkfix"
  ln -sf /usr/lib/x86_64-linux-gnu/libboost_python311.so "$WORK/linkfix/libboost_python.so"
  export CONDA_PREFIX="$("$PY" -c 'import sys; print(sys.base_prefix)')"
  export CPATH="$("$PY" -c 'import numpy; print(numpy.get_include())'):/usr/include/hdf5/serial"
  export LIBRARY_PATH="$WORK/linkfix:/usr/lib/x86_64-linux-gnu/hdf5/serial"
  "$VENV/bin/pip" wheel -q --no-deps -w "$WHEELHOUSE" "$SRC"
  rm -rf "$WORK"
fi
"$VENV/bin/pip" install -q --force-reinstall --no-deps "$WHL"
GLOG_minloglevel=2 "$PY" -c "import caffe; print('pycaffe', caffe.__version__, len(caffe.layer_type_list()), 'layer types')"
