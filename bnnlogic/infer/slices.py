"""Bit-sliced counting: a dense layer as a sum of weight columns over the input's set bits.

For one input u in {0,1}^n and up to 512 neurons (a *chunk*), a layer's counts

    C_i = sum_{j : u_j = 1} col_j[i]          (col_j in {0,1}^512, one bit per neuron)

are kept *vertically*: plane p is a 512-bit vector holding bit p of every C_i, so adding a
column costs a few 512-bit logic operations for all 512 neurons at once, and only the set
bits of u cost anything.  Columns are added 16 at a time by a Harley-Seal carry-save tree
(planes 1, 2, 4, 8, about 2 three-input logic operations -- VPTERNLOGQ -- per column); its
weight-16 output ripples into the planes above.  The threshold is a carry-out: with the
counter started at F_i (a per-neuron constant, see ``packing.sliced_tables``), a neuron
fires iff  F_i + C_i >= T  for a per-input scalar T, i.e. iff adding 2^P - T to the
P-plane counter carries out of plane P-1 (one majority operation per plane).  All exact:
integer sums on bits.
"""
from __future__ import annotations

from llvmlite import binding as llvm_binding
from llvmlite import ir as llvm_ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic
from numba.np.arrayobj import make_array

_I32, _I64 = llvm_ir.IntType(32), llvm_ir.IntType(64)
_V8 = llvm_ir.VectorType(_I64, 8)  # one plane / column: 512 bits


def _data(context, builder, ty, arr):
    return make_array(ty)(context, builder, arr).data


def c_array(ty, dtype) -> bool:
    """Is the numba type ``ty`` a C-contiguous array of ``dtype``?  (The intrinsics' typing check.)"""
    return isinstance(ty, types.Array) and ty.layout == "C" and ty.dtype == dtype


def load_run(context, builder, ty, arr, sty, start, vty: llvm_ir.VectorType, align: int):
    """The ``vty`` vector of the elements of array ``arr`` (numba type ``ty``) from flat index
    ``start`` (numba type ``sty``) on; the caller keeps the run in bounds."""
    i = context.cast(builder, start, sty, types.intp)
    return builder.load(builder.bitcast(cgutils.gep(builder, _data(context, builder, ty, arr), i),
                                        vty.as_pointer()), align=align)


def _vec_ptr(builder, data, index):
    """<8 x i64>* at element ``index`` of an i64 buffer."""
    return builder.bitcast(cgutils.gep(builder, data, index), _V8.as_pointer())


def _has_ternlog() -> bool:
    """Whether numba compiles for a CPU with AVX-512F (VPTERNLOGQ): the features it was told
    (``NUMBA_CPU_FEATURES``, see ``bnnlogic.jit``), else the host's unless a CPU name is set."""
    if config.CPU_FEATURES:
        return "+avx512f" in config.CPU_FEATURES.split(",")
    if config.CPU_NAME and config.CPU_NAME != "host":
        return False
    return bool(llvm_binding.get_host_cpu_features().get("avx512f"))


_XOR3, _MAJ = 0x96, 0xE8  # truth tables of a ^ b ^ c and majority(a, b, c) on (a, b, c)


def _logic3(builder, table, a, b, c):
    """The three-input bitwise function with truth table ``table``: one VPTERNLOGQ with AVX-512
    (LLVM does not find it for the majority), else and/or/xor."""
    if _has_ternlog():
        fn = cgutils.get_or_insert_function(builder.module, llvm_ir.FunctionType(_V8, [_V8, _V8, _V8, _I32]),
                                            "llvm.x86.avx512.pternlog.q.512")
        return builder.call(fn, [a, b, c, _I32(table)])
    if table == _XOR3:
        return builder.xor(builder.xor(a, b), c)
    return builder.or_(builder.and_(a, b), builder.and_(c, builder.or_(a, b)))


def splat(builder, value, vty: llvm_ir.VectorType):
    """The vector of type ``vty`` with ``value`` (of its element type) in every lane."""
    one = builder.insert_element(llvm_ir.Constant(vty, llvm_ir.Undefined), value, _I32(0))
    return builder.shuffle_vector(one, llvm_ir.Constant(vty, llvm_ir.Undefined),
                                  llvm_ir.Constant(llvm_ir.VectorType(_I32, vty.count), None))


def _csa(builder, a, b, c):
    """Carry-save adder of three planes: (a ^ b ^ c, majority(a, b, c)) -- sum and carry bits."""
    return _logic3(builder, _XOR3, a, b, c), _logic3(builder, _MAJ, a, b, c)


@intrinsic
def add_columns16(typingctx, cols, base, idx, i0, planes, n_planes):
    """Counter planes (rows of ``planes``, (>= n_planes, 8) uint64, C-contiguous) += the 16
    columns ``cols[base + 8*idx[i0 + m] : +8]``, m < 16 (``idx`` int32).

    Harley-Seal: rows 0..3 (weights 1, 2, 4, 8) absorb the 16 columns through 15 carry-save
    adders; the weight-16 carry is added into rows 4 .. n_planes-1 by a ripple (half adders);
    a carry out of the top row is dropped (the caller sizes the counter so none occurs).
    """
    if not (c_array(cols, types.uint64) and c_array(idx, types.int32) and c_array(planes, types.uint64)):
        return None

    def codegen(context, builder, signature, args):
        cty, bty, ity, i0ty, pty, nty = signature.args
        cdata, idata, pdata = (_data(context, builder, t, a) for t, a in ((cty, args[0]), (ity, args[2]),
                                                                        (pty, args[4])))
        base = context.cast(builder, args[1], bty, types.intp)
        i0 = context.cast(builder, args[3], i0ty, types.intp)
        n_planes = context.cast(builder, args[5], nty, types.intp)
        col = []
        for m in range(16):
            j = builder.sext(builder.load(cgutils.gep(builder, idata, builder.add(i0, context.get_constant(types.intp, m)))),
                             _I64)
            col.append(builder.load(_vec_ptr(builder, cdata, builder.add(base, builder.shl(j, _I64(3)))), align=8))
        row = [_vec_ptr(builder, pdata, context.get_constant(types.intp, 8 * p)) for p in range(4)]
        ones, twos, fours, eights = (builder.load(r, align=8) for r in row)
        eights_in = []
        for h in range(2):  # two halves of 8 columns, each giving one weight-8 carry
            fours_in = []
            for q in range(2):
                twos_in = []
                for pair in range(2):
                    a, b = col[8 * h + 4 * q + 2 * pair], col[8 * h + 4 * q + 2 * pair + 1]
                    ones, carry = _csa(builder, ones, a, b)
                    twos_in.append(carry)
                twos, carry = _csa(builder, twos, *twos_in)
                fours_in.append(carry)
            fours, carry = _csa(builder, fours, *fours_in)
            eights_in.append(carry)
        eights, sixteens = _csa(builder, eights, *eights_in)
        for r, v in zip(row, (ones, twos, fours, eights)):
            builder.store(v, r, align=8)
        carry_slot = cgutils.alloca_once_value(builder, sixteens)
        with cgutils.for_range_slice(builder, context.get_constant(types.intp, 4), n_planes,
                                     context.get_constant(types.intp, 1)) as (p, _):
            r = _vec_ptr(builder, pdata, builder.mul(p, context.get_constant(types.intp, 8)))
            x, c = builder.load(r, align=8), builder.load(carry_slot)
            builder.store(builder.xor(x, c), r, align=8)
            builder.store(builder.and_(x, c), carry_slot)
        return context.get_dummy_value()

    return types.void(cols, base, idx, i0, planes, n_planes), codegen


@intrinsic
def carry_out(typingctx, planes, n_planes, addend, dst, d_off):
    """dst[d_off : d_off + 8] = the 512 bits [V_i + addend >= 2^n_planes], V_i the counter in rows
    0 .. n_planes-1 of ``planes`` (bit p of V_i = bit i of row p) and 0 <= addend < 2^n_planes a
    scalar: the carry out of the bit-sliced sum, one majority per plane."""
    if not (c_array(planes, types.uint64) and c_array(dst, types.uint64)):
        return None

    def codegen(context, builder, signature, args):
        pty, nty, aty, dty, oty = signature.args
        pdata, ddata = _data(context, builder, pty, args[0]), _data(context, builder, dty, args[3])
        n_planes = context.cast(builder, args[1], nty, types.intp)
        addend = context.cast(builder, args[2], aty, types.int64)
        d_off = context.cast(builder, args[4], oty, types.intp)
        carry_slot = cgutils.alloca_once_value(builder, llvm_ir.Constant(_V8, None))
        with cgutils.for_range(builder, n_planes) as loop:
            p = loop.index
            x = builder.load(_vec_ptr(builder, pdata, builder.mul(p, context.get_constant(types.intp, 8))), align=8)
            t = splat(builder, builder.neg(builder.and_(builder.lshr(addend, p), _I64(1))), _V8)
            c = builder.load(carry_slot)
            xt = builder.xor(x, t)
            builder.store(builder.or_(builder.and_(x, t), builder.and_(xt, c)), carry_slot)
        builder.store(builder.load(carry_slot), _vec_ptr(builder, ddata, d_off), align=8)
        return context.get_dummy_value()

    return types.void(planes, n_planes, addend, dst, d_off), codegen


@intrinsic
def store_set_bits(typingctx, word, base, idx, m):
    """idx[m : m + popcount(word)] = base + l for the set bits l of ``word``, ascending (``idx``
    int32): one compressing store (VPCOMPRESSD with AVX-512)."""
    if not c_array(idx, types.int32):
        return None

    def codegen(context, builder, signature, args):
        wty, bty, ity, mty = signature.args
        vty = llvm_ir.VectorType(_I32, 64)
        mask = builder.bitcast(context.cast(builder, args[0], wty, types.uint64),
                               llvm_ir.VectorType(llvm_ir.IntType(1), 64))
        base = builder.trunc(context.cast(builder, args[1], bty, types.int64), _I32)
        lanes = builder.add(splat(builder, base, vty), llvm_ir.Constant(vty, list(range(64))))
        ptr = cgutils.gep(builder, _data(context, builder, ity, args[2]), context.cast(builder, args[3], mty, types.intp))
        fn = cgutils.get_or_insert_function(builder.module, llvm_ir.FunctionType(
            llvm_ir.VoidType(), [vty, ptr.type, mask.type]), "llvm.masked.compressstore.v64i32")
        builder.call(fn, [lanes, ptr, mask])
        return context.get_dummy_value()

    return types.void(word, base, idx, m), codegen
