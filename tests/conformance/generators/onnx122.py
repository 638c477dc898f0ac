#!/usr/bin/env python3
# Extra conformance cases for the ops of opsets 23 to 27 (Attention, RMSNormalization, RotaryEmbedding,
# Swish, TensorScatter, BitCast, CumProd, LinearAttention, CausalConvWithState), of ai.onnx.ml
# (Binarizer, ArrayFeatureExtractor, LabelEncoder, TreeEnsemble) and of ai.onnx.preview (FlexAttention):
# a few of ONNX 1.22's own backend cases, copied from the onnx wheel in the peers' venv, so that every
# declared op has a case that runs without that venv
# (tests/op_coverage_test.cc reads extra_expected_pass.txt). Their expected outputs come from ONNX's
# reference implementation (onnx/reference/ops), not from kiln. The whole suite runs with
# `kiln conformance --suite onnx-1.22`.
#
# Regenerate, from the repository root, after `make peers`:
#   benchmarks/peers/.venv/bin/python tests/conformance/generators/onnx122.py
# Writes tests/conformance/extra/test_onnx122_*; the committed files are the source of truth.
import glob
import os
import shutil

import onnx

FAMILY = 'onnx122'
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'extra')
NODE = os.path.join(os.path.dirname(onnx.__file__), 'backend', 'test', 'data', 'node')
CASES = [
    'test_attention_3d_gqa_with_past_and_present',
    'test_attention_4d_attn_mask_bool',
    'test_attention_4d_diff_heads_mask4d_padded_kv',
    'test_attention_4d_with_past_and_present_qk_matmul_bias_4d_mask_causal',
    'test_attention_4d_softcap',
    'test_rms_normalization_4d_axis1',
    'test_rms_normalization_3d_axis_negative_1_epsilon',
    'test_rotary_embedding',
    'test_rotary_embedding_3d_input',
    'test_rotary_embedding_no_position_ids_interleaved',
    'test_rotary_embedding_with_interleaved_rotary_dim',
    'test_swish',
    'test_tensorscatter_circular',
    'test_tensorscatter_3d',
    'test_bitcast_float32_to_int32',
    'test_bitcast_bool_to_uint8',
    'test_cumprod_2d_axis_1',
    'test_cumprod_1d_reverse_exclusive',
    'test_linear_attention_gated_delta_gqa',
    'test_linear_attention_prefill_with_past',
    'test_linear_attention_gated_per_head_decay',
    'test_causal_conv_with_state_silu_with_past_state',
    'test_causal_conv_with_state_with_bias_and_past_state',
    'test_ai_onnx_ml_binarizer',
    'test_ai_onnx_ml_array_feature_extractor',
    'test_ai_onnx_ml_label_encoder_string_int',
    'test_ai_onnx_ml_label_encoder_tensor_mapping',
    'test_ai_onnx_ml_tree_ensemble_set_membership',
    'test_ai_onnx_ml_tree_ensemble_single_tree',
    'test_flexattention_score_mod',
    'test_flexattention_gqa',
]

for old in glob.glob(os.path.join(ROOT, f'test_{FAMILY}_*')):
    shutil.rmtree(old)
for name in CASES:
    shutil.copytree(os.path.join(NODE, name), os.path.join(ROOT, f'test_{FAMILY}_' + name[len('test_'):]))
