builtin.module attributes {pimc.model = "tiny-llama"} {
  func.func @prefill(%ids: tensor<8xi64>, %pos: tensor<8xi64>) -> (tensor<8x512xf32>, tensor<8xi64>) {
    %w = llm.weight "model.embed_tokens.weight" : tensor<512x128xf32>
    %0 = llm.embedding %ids, %w : (tensor<8xi64>, tensor<512x128xf32>) -> tensor<8x128xf32>
    %w_1 = llm.weight "model.layers.0.input_layernorm.weight" : tensor<128xf32>
    %1 = llm.rmsnorm %0, %w_1 {eps = 1.000000e-05 : f64} : (tensor<8x128xf32>, tensor<128xf32>) -> tensor<8x128xf32>
    %w_2 = llm.weight "model.layers.0.self_attn.q_proj.weight" : tensor<128x128xf32>
    %2 = llm.linear %1, %w_2 : (tensor<8x128xf32>, tensor<128x128xf32>) -> tensor<8x128xf32>
    %w_3 = llm.weight "model.layers.0.self_attn.k_proj.weight" : tensor<64x128xf32>
    %3 = llm.linear %1, %w_3 : (tensor<8x128xf32>, tensor<64x128xf32>) -> tensor<8x64xf32>
    %w_4 = llm.weight "model.layers.0.self_attn.v_proj.weight" : tensor<64x128xf32>
    %4 = llm.linear %1, %w_4 : (tensor<8x128xf32>, tensor<64x128xf32>) -> tensor<8x64xf32>
    %5 = llm.reshape %2 : (tensor<8x128xf32>) -> tensor<8x4x32xf32>
    %6 = llm.reshape %3 : (tensor<8x64xf32>) -> tensor<8x2x32xf32>
    %7 = llm.reshape %4 : (tensor<8x64xf32>) -> tensor<8x2x32xf32>
    %8 = llm.rope %5, %pos {theta = 1.000000e+04 : f64, style = "half", rotary_dim = 32 : i64} : (tensor<8x4x32xf32>, tensor<8xi64>) -> tensor<8x4x32xf32>
    %9 = llm.rope %6, %pos {theta = 1.000000e+04 : f64, style = "half", rotary_dim = 32 : i64} : (tensor<8x2x32xf32>, tensor<8xi64>) -> tensor<8x2x32xf32>
    %10 = llm.kv_cache_append %9, %pos {cache = "layers.0.k"} : (tensor<8x2x32xf32>, tensor<8xi64>) -> tensor<32x2x32xf32>
    %11 = llm.kv_cache_append %7, %pos {cache = "layers.0.v"} : (tensor<8x2x32xf32>, tensor<8xi64>) -> tensor<32x2x32xf32>
    %12 = llm.attention %8, %9, %7, %pos {heads = 4 : i64, kv_heads = 2 : i64, head_dim = 32 : i64, scale = 0.17677669529663687 : f64, causal} : (tensor<8x4x32xf32>, tensor<8x2x32xf32>, tensor<8x2x32xf32>, tensor<8xi64>) -> tensor<8x4x32xf32>
    %13 = llm.reshape %12 : (tensor<8x4x32xf32>) -> tensor<8x128xf32>
    %w_5 = llm.weight "model.layers.0.self_attn.o_proj.weight" : tensor<128x128xf32>
    %14 = llm.linear %13, %w_5 : (tensor<8x128xf32>, tensor<128x128xf32>) -> tensor<8x128xf32>
    %15 = llm.add %0, %14 : (tensor<8x128xf32>, tensor<8x128xf32>) -> tensor<8x128xf32>
    %w_6 = llm.weight "model.layers.0.post_attention_layernorm.weight" : tensor<128xf32>
    %16 = llm.rmsnorm %15, %w_6 {eps = 1.000000e-05 : f64} : (tensor<8x128xf32>, tensor<128xf32>) -> tensor<8x128xf32>
    %w_7 = llm.weight "model.layers.0.mlp.up_proj.weight" : tensor<344x128xf32>
    %17 = llm.linear %16, %w_7 : (tensor<8x128xf32>, tensor<344x128xf32>) -> tensor<8x344xf32>
    %w_8 = llm.weight "model.layers.0.mlp.gate_proj.weight" : tensor<344x128xf32>
    %18 = llm.linear %16, %w_8 : (tensor<8x128xf32>, tensor<344x128xf32>) -> tensor<8x344xf32>
    %19 = llm.silu %18 : (tensor<8x344xf32>) -> tensor<8x344xf32>
    %20 = llm.mul %19, %17 : (tensor<8x344xf32>, tensor<8x344xf32>) -> tensor<8x344xf32>
    %w_9 = llm.weight "model.layers.0.mlp.down_proj.weight" : tensor<128x344xf32>
    %21 = llm.linear %20, %w_9 : (tensor<8x344xf32>, tensor<128x344xf32>) -> tensor<8x128xf32>
    %22 = llm.add %15, %21 : (tensor<8x128xf32>, tensor<8x128xf32>) -> tensor<8x128xf32>
    %w_10 = llm.weight "model.layers.1.input_layernorm.weight" : tensor<128xf32>
    %23 = llm.rmsnorm %22, %w_10 {eps = 1.000000e-05 : f64} : (tensor<8x128xf32>, tensor<128xf32>) -> tensor<8x128xf32>
    %w_11 = llm.weight "model.layers.1.self_attn.q_proj.weight" : tensor<128x128xf32>
    %24 = llm.linear %23, %w_11 : (tensor<8x128xf32>, tensor<128x128xf32>) -> tensor<8x128xf32>
    %w_12 = llm.weight "model.layers.1.self_attn.k_proj.weight" : tensor<64x128xf32>
    %25 = llm.linear %23, %w_12 : (tensor<8x128xf32>, tensor<64x128xf32>) -> tensor<8x64xf32>
    %w_13 = llm.weight "model.layers.1.self_attn.v_proj.weight" : tensor<64x128xf32>
    %26 = llm.linear %23, %w_13 : (tensor<8x128xf32>, tensor<64x128xf32>) -> tensor<8x64xf32>
    %27 = llm.reshape %24 : (tensor<8x128xf32>) -> tensor<8x4x32xf32>
    %28 = llm.reshape %25 : (tensor<8x64xf32>) -> tensor<8x2x32xf32>
    %29 = llm.reshape %26 : (tensor<8x64xf32>) -> tensor<8x2x32xf32>
    %30 = llm.rope %27, %pos {theta = 1.000000e+04 : f64, style = "half", rotary_dim = 32 : i64} : (tensor<8x4x32xf32>, tensor<8xi64>) -> tensor<8x4x32xf32>
    %31 = llm.rope %28, %pos {theta = 1.000000e+04 : f64, style = "half", rotary_dim = 32 : i64} : (tensor<8x2x32xf32>, tensor<8xi64>) -> tensor<8x2x32xf32>
    %32 = llm.kv_cache_append %31, %pos {cache = "layers.1.k"} : (tensor<8x2x32xf32>, tensor<8xi64>) -> tensor<32x2x32xf32>
    %33 = llm.kv_cache_append %29, %pos {cache = "layers.1.v"} : (tensor<8x2x32xf32>, tensor<8xi64>) -> tensor<32x2x32xf32>
    %34 = llm.attention %30, %31, %29, %pos {heads = 4 : i64, kv_heads = 2 : i64, head_dim = 32 : i64, scale = 0.17677669529663687 : f64, causal} : (tensor<8x4x32xf32>, tensor<8x2x32xf32>, tensor<8x2x32xf32>, tensor<8xi64>) -> tensor<8x4x32xf32>
    %35 = llm.reshape %34 : (tensor<8x4x32xf32>) -> tensor<8x128xf32>
    %w_14 = llm.weight "model.layers.1.self_attn.o_proj.weight" : tensor<128x128xf32>
    %36 = llm.linear %35, %w_14 : (tensor<8x128xf32>, tensor<128x128xf32>) -> tensor<8x128xf32>
    %37 = llm.add %22, %36 : (tensor<8x128xf32>, tensor<8x128xf32>) -> tensor<8x128xf32>
    %w_15 = llm.weight "model.layers.1.post_attention_layernorm.weight" : tensor<128xf32>
    %38 = llm.rmsnorm %37, %w_15 {eps = 1.000000e-05 : f64} : (tensor<8x128xf32>, tensor<128xf32>) -> tensor<8x128xf32>
    %w_16 = llm.weight "model.layers.1.mlp.up_proj.weight" : tensor<344x128xf32>
    %39 = llm.linear %38, %w_16 : (tensor<8x128xf32>, tensor<344x128xf32>) -> tensor<8x344xf32>
    %w_17 = llm.weight "model.layers.1.mlp.gate_proj.weight" : tensor<344x128xf32>
    %40 = llm.linear %38, %w_17 : (tensor<8x128xf32>, tensor<344x128xf32>) -> tensor<8x344xf32>
    %41 = llm.silu %40 : (tensor<8x344xf32>) -> tensor<8x344xf32>
    %42 = llm.mul %41, %39 : (tensor<8x344xf32>, tensor<8x344xf32>) -> tensor<8x344xf32>
    %w_18 = llm.weight "model.layers.1.mlp.down_proj.weight" : tensor<128x344xf32>
    %43 = llm.linear %42, %w_18 : (tensor<8x344xf32>, tensor<128x344xf32>) -> tensor<8x128xf32>
    %44 = llm.add %37, %43 : (tensor<8x128xf32>, tensor<8x128xf32>) -> tensor<8x128xf32>
    %w_19 = llm.weight "model.norm.weight" : tensor<128xf32>
    %45 = llm.rmsnorm %44, %w_19 {eps = 1.000000e-05 : f64} : (tensor<8x128xf32>, tensor<128xf32>) -> tensor<8x128xf32>
    %w_20 = llm.weight "lm_head.weight" : tensor<512x128xf32>
    %46 = llm.linear %45, %w_20 : (tensor<8x128xf32>, tensor<512x128xf32>) -> tensor<8x512xf32>
    %47 = llm.argmax %46 {axis = -1 : i64} : (tensor<8x512xf32>) -> tensor<8xi64>
    func.return %46, %47 : tensor<8x512xf32>, tensor<8xi64>
  }
  func.func @decode(%ids: tensor<1xi64>, %pos: tensor<1xi64>) -> (tensor<1x512xf32>, tensor<1xi64>) {
    %w = llm.weight "model.embed_tokens.weight" : tensor<512x128xf32>
    %0 = llm.embedding %ids, %w : (tensor<1xi64>, tensor<512x128xf32>) -> tensor<1x128xf32>
    %w_1 = llm.weight "model.layers.0.input_layernorm.weight" : tensor<128xf32>
    %1 = llm.rmsnorm %0, %w_1 {eps = 1.000000e-05 : f64} : (tensor<1x128xf32>, tensor<128xf32>) -> tensor<1x128xf32>
    %w_2 = llm.weight "model.layers.0.self_attn.q_proj.weight" : tensor<128x128xf32>
    %2 = llm.linear %1, %w_2 : (tensor<1x128xf32>, tensor<128x128xf32>) -> tensor<1x128xf32>
    %w_3 = llm.weight "model.layers.0.self_attn.k_proj.weight" : tensor<64x128xf32>
    %3 = llm.linear %1, %w_3 : (tensor<1x128xf32>, tensor<64x128xf32>) -> tensor<1x64xf32>
    %w_4 = llm.weight "model.layers.0.self_attn.v_proj.weight" : tensor<64x128xf32>
    %4 = llm.linear %1, %w_4 : (tensor<1x128xf32>, tensor<64x128xf32>) -> tensor<1x64xf32>
    %5 = llm.reshape %2 : (tensor<1x128xf32>) -> tensor<1x4x32xf32>
    %6 = llm.reshape %3 : (tensor<1x64xf32>) -> tensor<1x2x32xf32>
    %7 = llm.reshape %4 : (tensor<1x64xf32>) -> tensor<1x2x32xf32>
    %8 = llm.rope %5, %pos {theta = 1.000000e+04 : f64, style = "half", rotary_dim = 32 : i64} : (tensor<1x4x32xf32>, tensor<1xi64>) -> tensor<1x4x32xf32>
    %9 = llm.rope %6, %pos {theta = 1.000000e+04 : f64, style = "half", rotary_dim = 32 : i64} : (tensor<1x2x32xf32>, tensor<1xi64>) -> tensor<1x2x32xf32>
    %10 = llm.kv_cache_append %9, %pos {cache = "layers.0.k"} : (tensor<1x2x32xf32>, tensor<1xi64>) -> tensor<32x2x32xf32>
    %11 = llm.kv_cache_append %7, %pos {cache = "layers.0.v"} : (tensor<1x2x32xf32>, tensor<1xi64>) -> tensor<32x2x32xf32>
    %12 = llm.attention %8, %10, %11, %pos {heads = 4 : i64, kv_heads = 2 : i64, head_dim = 32 : i64, scale = 0.17677669529663687 : f64, causal} : (tensor<1x4x32xf32>, tensor<32x2x32xf32>, tensor<32x2x32xf32>, tensor<1xi64>) -> tensor<1x4x32xf32>
    %13 = llm.reshape %12 : (tensor<1x4x32xf32>) -> tensor<1x128xf32>
    %w_5 = llm.weight "model.layers.0.self_attn.o_proj.weight" : tensor<128x128xf32>
    %14 = llm.linear %13, %w_5 : (tensor<1x128xf32>, tensor<128x128xf32>) -> tensor<1x128xf32>
    %15 = llm.add %0, %14 : (tensor<1x128xf32>, tensor<1x128xf32>) -> tensor<1x128xf32>
    %w_6 = llm.weight "model.layers.0.post_attention_layernorm.weight" : tensor<128xf32>
    %16 = llm.rmsnorm %15, %w_6 {eps = 1.000000e-05 : f64} : (tensor<1x128xf32>, tensor<128xf32>) -> tensor<1x128xf32>
    %w_7 = llm.weight "model.layers.0.mlp.up_proj.weight" : tensor<344x128xf32>
    %17 = llm.linear %16, %w_7 : (tensor<1x128xf32>, tensor<344x128xf32>) -> tensor<1x344xf32>
    %w_8 = llm.weight "model.layers.0.mlp.gate_proj.weight" : tensor<344x128xf32>
    %18 = llm.linear %16, %w_8 : (tensor<1x128xf32>, tensor<344x128xf32>) -> tensor<1x344xf32>
    %19 = llm.silu %18 : (tensor<1x344xf32>) -> tensor<1x344xf32>
    %20 = llm.mul %19, %17 : (tensor<1x344xf32>, tensor<1x344xf32>) -> tensor<1x344xf32>
    %w_9 = llm.weight "model.layers.0.mlp.down_proj.weight" : tensor<128x344xf32>
    %21 = llm.linear %20, %w_9 : (tensor<1x344xf32>, tensor<128x344xf32>) -> tensor<1x128xf32>
    %22 = llm.add %15, %21 : (tensor<1x128xf32>, tensor<1x128xf32>) -> tensor<1x128xf32>
    %w_10 = llm.weight "model.layers.1.input_layernorm.weight" : tensor<128xf32>
    %23 = llm.rmsnorm %22, %w_10 {eps = 1.000000e-05 : f64} : (tensor<1x128xf32>, tensor<128xf32>) -> tensor<1x128xf32>
    %w_11 = llm.weight "model.layers.1.self_attn.q_proj.weight" : tensor<128x128xf32>
    %24 = llm.linear %23, %w_11 : (tensor<1x128xf32>, tensor<128x128xf32>) -> tensor<1x128xf32>
    %w_12 = llm.weight "model.layers.1.self_attn.k_proj.weight" : tensor<64x128xf32>
    %25 = llm.linear %23, %w_12 : (tensor<1x128xf32>, tensor<64x128xf32>) -> tensor<1x64xf32>
    %w_13 = llm.weight "model.layers.1.self_attn.v_proj.weight" : tensor<64x128xf32>
    %26 = llm.linear %23, %w_13 : (tensor<1x128xf32>, tensor<64x128xf32>) -> tensor<1x64xf32>
    %27 = llm.reshape %24 : (tensor<1x128xf32>) -> tensor<1x4x32xf32>
    %28 = llm.reshape %25 : (tensor<1x64xf32>) -> tensor<1x2x32xf32>
    %29 = llm.reshape %26 : (tensor<1x64xf32>) -> tensor<1x2x32xf32>
    %30 = llm.rope %27, %pos {theta = 1.000000e+04 : f64, style = "half", rotary_dim = 32 : i64} : (tensor<1x4x32xf32>, tensor<1xi64>) -> tensor<1x4x32xf32>
    %31 = llm.rope %28, %pos {theta = 1.000000e+04 : f64, style = "half", rotary_dim = 32 : i64} : (tensor<1x2x32xf32>, tensor<1xi64>) -> tensor<1x2x32xf32>
    %32 = llm.kv_cache_append %31, %pos {cache = "layers.1.k"} : (tensor<1x2x32xf32>, tensor<1xi64>) -> tensor<32x2x32xf32>
    %33 = llm.kv_cache_append %29, %pos {cache = "layers.1.v"} : (tensor<1x2x32xf32>, tensor<1xi64>) -> tensor<32x2x32xf32>
    %34 = llm.attention %30, %32, %33, %pos {heads = 4 : i64, kv_heads = 2 : i64, head_dim = 32 : i64, scale = 0.17677669529663687 : f64, causal} : (tensor<1x4x32xf32>, tensor<32x2x32xf32>, tensor<32x2x32xf32>, tensor<1xi64>) -> tensor<1x4x32xf32>
    %35 = llm.reshape %34 : (tensor<1x4x32xf32>) -> tensor<1x128xf32>
    %w_14 = llm.weight "model.layers.1.self_attn.o_proj.weight" : tensor<128x128xf32>
    %36 = llm.linear %35, %w_14 : (tensor<1x128xf32>, tensor<128x128xf32>) -> tensor<1x128xf32>
    %37 = llm.add %22, %36 : (tensor<1x128xf32>, tensor<1x128xf32>) -> tensor<1x128xf32>
    %w_15 = llm.weight "model.layers.1.post_attention_layernorm.weight" : tensor<128xf32>
    %38 = llm.rmsnorm %37, %w_15 {eps = 1.000000e-05 : f64} : (tensor<1x128xf32>, tensor<128xf32>) -> tensor<1x128xf32>
    %w_16 = llm.weight "model.layers.1.mlp.up_proj.weight" : tensor<344x128xf32>
    %39 = llm.linear %38, %w_16 : (tensor<1x128xf32>, tensor<344x128xf32>) -> tensor<1x344xf32>
    %w_17 = llm.weight "model.layers.1.mlp.gate_proj.weight" : tensor<344x128xf32>
    %40 = llm.linear %38, %w_17 : (tensor<1x128xf32>, tensor<344x128xf32>) -> tensor<1x344xf32>
    %41 = llm.silu %40 : (tensor<1x344xf32>) -> tensor<1x344xf32>
    %42 = llm.mul %41, %39 : (tensor<1x344xf32>, tensor<1x344xf32>) -> tensor<1x344xf32>
    %w_18 = llm.weight "model.layers.1.mlp.down_proj.weight" : tensor<128x344xf32>
    %43 = llm.linear %42, %w_18 : (tensor<1x344xf32>, tensor<128x344xf32>) -> tensor<1x128xf32>
    %44 = llm.add %37, %43 : (tensor<1x128xf32>, tensor<1x128xf32>) -> tensor<1x128xf32>
    %w_19 = llm.weight "model.norm.weight" : tensor<128xf32>
    %45 = llm.rmsnorm %44, %w_19 {eps = 1.000000e-05 : f64} : (tensor<1x128xf32>, tensor<128xf32>) -> tensor<1x128xf32>
    %w_20 = llm.weight "lm_head.weight" : tensor<512x128xf32>
    %46 = llm.linear %45, %w_20 : (tensor<1x128xf32>, tensor<512x128xf32>) -> tensor<1x512xf32>
    %47 = llm.argmax %46 {axis = -1 : i64} : (tensor<1x512xf32>) -> tensor<1xi64>
    func.return %46, %47 : tensor<1x512xf32>, tensor<1xi64>
  }
}
