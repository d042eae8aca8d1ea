"""The PyTorch modules (spacy_twitter_ner.models.torch_modules): shapes, packed sequences equal
per-sequence results, and dropout that follows the explicit ``is_train`` argument only, never
the module's train()/eval() mode (which thinc's PyTorchShim flips on the one shared module)."""
import pytest
import torch

from spacy_twitter_ner.models.torch_modules import BiLSTM, TokenFeaturizer

torch.set_num_threads(1)


def featurizer(dropout=0.0, width=12, **sizes):
    kwargs = dict(width=width, n_words=20, word_dim=6, n_chars=30, char_dim=4, char_filters=5,
                  char_window=3, n_shapes=13, shape_dim=3, n_extra=2, dropout=dropout)
    kwargs.update(sizes)
    torch.manual_seed(0)
    return TokenFeaturizer(**kwargs)


def featurizer_inputs(n_tokens=7, n_distinct=5, max_chars=6, seed=0):
    """As LexicalTable.featurize_batch makes them: tokens of the same distinct string (the same
    ``index``) have the same word and shape ids."""
    g = torch.Generator().manual_seed(seed)
    chars = torch.randint(1, 30, (n_distinct, max_chars), generator=g)
    chars[:, max_chars - 2:] = 0  # every token shorter than the window: padding
    index = torch.randint(0, n_distinct, (n_tokens,), generator=g)
    words = torch.randint(0, 20, (n_distinct,), generator=g)[index]
    shapes = torch.randint(0, 13, (n_distinct,), generator=g)[index]
    extra = torch.rand((n_tokens, 2), generator=g)
    return words, chars, index, shapes, extra


# -- TokenFeaturizer -------------------------------------------------------------------------------


def test_featurizer_shapes_and_projection():
    module = featurizer()
    out = module(*featurizer_inputs())
    assert out.shape == (7, 12)
    assert module.project is not None  # 6 + 5 + 3 + 2 = 16 != 12
    same = featurizer(width=16)
    assert same.project is None and same(*featurizer_inputs()).shape == (7, 16)


def test_featurizer_no_tokens():
    """What LexicalTable.featurize_batch gives for a batch without tokens."""
    empty = torch.zeros((0,), dtype=torch.long)
    out = featurizer()(empty, torch.zeros((0, 1), dtype=torch.long), empty, empty, torch.zeros((0, 2)))
    assert out.shape == (0, 12)


def test_featurizer_parts_can_be_switched_off():
    for off in ({"word_dim": 0}, {"char_filters": 0}, {"shape_dim": 0}, {"n_extra": 0}):
        module = featurizer(**off)
        words, chars, index, shapes, extra = featurizer_inputs()
        if off.get("n_extra") == 0:
            extra = extra[:, :0]
        assert module(words, chars, index, shapes, extra).shape == (7, 12), off
    with pytest.raises(ValueError, match="switched off"):
        featurizer(word_dim=0, char_filters=0, shape_dim=0, n_extra=0)


def test_featurizer_char_padding_never_matters():
    """A token's char CNN features do not depend on how far its row is padded (the batch's
    window is trimmed to its longest token)."""
    module = featurizer()
    words, chars, index, shapes, extra = featurizer_inputs(max_chars=6)
    wide = torch.cat([chars, torch.zeros((chars.shape[0], 10), dtype=chars.dtype)], dim=1)
    a = module(words, chars, index, shapes, extra)
    b = module(words, wide, index, shapes, extra)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_featurizer_resize_words():
    module = featurizer()
    module.resize_words(50)
    assert module.word_embed.num_embeddings == 50
    assert (module.word_embed.weight[0] == 0).all()  # padding row
    words, chars, index, shapes, extra = featurizer_inputs()
    assert module(words + 25, chars, index, shapes, extra).shape == (7, 12)
    before = module.word_embed
    module.resize_words(50)  # same size: kept
    assert module.word_embed is before


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_featurizer_dropout_follows_is_train_not_the_module_mode(mode):
    module = featurizer(dropout=0.5)
    no_dropout = featurizer(dropout=0.0)
    no_dropout.load_state_dict(module.state_dict())
    getattr(module, mode)()
    inputs = featurizer_inputs()
    with torch.no_grad():
        reference = no_dropout.eval()(*inputs)
        predicted = [module(*inputs, is_train=False) for _ in range(3)]
        trained = [module(*inputs, is_train=True) for _ in range(3)]
        default = module(*inputs)  # is_train defaults to False
    for out in predicted + [default]:
        torch.testing.assert_close(out, reference, rtol=0, atol=0)
    assert not torch.equal(trained[0], reference)
    assert not torch.equal(trained[0], trained[1])


# -- BiLSTM ------------------------------------------------------------------------------------------


def bilstm(depth=1, dropout=0.0, n_in=6, hidden=4):
    torch.manual_seed(1)
    return BiLSTM(n_in, hidden, depth, dropout)


def tokens_for(lengths, n_in=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((sum(lengths), n_in), generator=g)


def test_bilstm_shapes_with_empty_sequences():
    module = bilstm()
    lengths = [3, 0, 5, 1, 0]
    out = module(tokens_for(lengths), lengths)
    assert out.shape == (9, 8)
    assert module(torch.zeros((0, 6)), [0, 0]).shape == (0, 8)
    assert module(torch.zeros((0, 6)), []).shape == (0, 8)


@pytest.mark.parametrize("depth", [1, 2])
def test_bilstm_packed_batch_equals_each_sequence_alone(depth):
    module = bilstm(depth=depth)
    lengths = [3, 0, 7, 1, 4]
    tokens = tokens_for(lengths)
    with torch.no_grad():
        batch = module(tokens, lengths)
        alone = torch.cat([module(seq, [len(seq)]) for seq in torch.split(tokens, lengths) if len(seq)])
    torch.testing.assert_close(batch, alone, rtol=0, atol=1e-6)


def test_bilstm_packing_matches_torch_pack_sequence():
    """The one-go index layout (torch_modules.packing) is what pack_sequence(enforce_sorted=False)
    builds: same packed data and batch sizes, and the way back restores the flat token order."""
    from torch.nn.utils.rnn import pack_sequence

    from spacy_twitter_ner.models.torch_modules import packing

    lengths = [3, 0, 7, 1, 4, 0, 7, 2]
    tokens = tokens_for(lengths)
    to_packed, from_packed, batch_sizes, sorted_idx, unsorted_idx = packing(lengths, tokens.device)
    want = pack_sequence([s for s in torch.split(tokens, lengths) if len(s)], enforce_sorted=False)
    assert torch.equal(batch_sizes, want.batch_sizes)
    assert torch.equal(sorted_idx, want.sorted_indices) and torch.equal(unsorted_idx, want.unsorted_indices)
    assert torch.equal(tokens.index_select(0, to_packed), want.data)
    assert torch.equal(tokens.index_select(0, to_packed).index_select(0, from_packed), tokens)


def test_bilstm_depth_2_is_two_stacked_bidirectional_layers():
    module = bilstm(depth=2)
    assert len(module.layers) == 2
    assert module.layers[1].input_size == 8
    lengths = [4, 2]
    tokens = tokens_for(lengths)
    with torch.no_grad():
        out = module(tokens, lengths)
        manual = []
        for seq in torch.split(tokens, lengths):
            h = seq.unsqueeze(0)
            for lstm in module.layers:
                h, _ = lstm(h)
            manual.append(h[0])
    torch.testing.assert_close(out, torch.cat(manual), rtol=0, atol=1e-6)
    assert not torch.allclose(out, bilstm(depth=1)(tokens, lengths), atol=1e-3)


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_bilstm_dropout_follows_is_train_not_the_module_mode(depth, mode):
    module = bilstm(depth=depth, dropout=0.5)
    reference = bilstm(depth=depth, dropout=0.0)
    reference.load_state_dict(module.state_dict())
    getattr(module, mode)()
    lengths = [3, 5]
    tokens = tokens_for(lengths)
    with torch.no_grad():
        want = reference.eval()(tokens, lengths)
        for out in (module(tokens, lengths), module(tokens, lengths, is_train=False)):
            torch.testing.assert_close(out, want, rtol=0, atol=0)
        a, b = module(tokens, lengths, is_train=True), module(tokens, lengths, is_train=True)
    assert not torch.equal(a, want) and not torch.equal(a, b)


def test_bilstm_gradients_reach_the_inputs():
    module = bilstm(depth=2, dropout=0.2)
    lengths = [3, 0, 2]
    tokens = tokens_for(lengths).requires_grad_(True)
    module(tokens, lengths, is_train=True).sum().backward()
    assert tokens.grad is not None and tokens.grad.shape == tokens.shape
    assert (tokens.grad.abs().sum(dim=1) > 0).all()


def test_word_dropout_replaces_words_by_unk_in_training_only():
    from spacy_twitter_ner.models import lexical, torch_modules

    assert torch_modules.UNK_ID == lexical.UNK_ID
    module = featurizer(word_dropout=0.5, char_filters=0, shape_dim=0, n_extra=0, word_dim=6, width=6)
    words = torch.arange(2, 20).repeat(50)  # 900 tokens, no <PAD>/<UNK>
    unk_row = module.word_embed.weight[torch_modules.UNK_ID]
    args = (torch.zeros((0, 1), dtype=torch.long), torch.zeros((900,), dtype=torch.long),
            torch.zeros((900,), dtype=torch.long), torch.zeros((900, 0)))
    torch.manual_seed(1)
    trained = module(words, *args, is_train=True)
    replaced = (trained == unk_row).all(dim=1)
    assert 0.4 < replaced.float().mean() < 0.6
    kept = ~replaced
    assert torch.equal(trained[kept], module.word_embed(words)[kept])
    assert torch.equal(module(words, *args, is_train=False), module.word_embed(words))
    with pytest.raises(ValueError, match="word_dropout"):
        featurizer(word_dropout=1.0)


def test_word_dropout_blanks_the_lookup_columns_of_the_dropped_tokens_only():
    """``lookup_extra`` columns (static vectors, clusters) become zeros exactly for the tokens
    whose word id was dropped, in training only; other extra columns are never touched."""
    from spacy_twitter_ner.models import torch_modules

    module = featurizer(word_dropout=0.5, char_filters=0, shape_dim=0, n_extra=5, word_dim=6, width=11,
                        lookup_extra=[(0, 2), (3, 4)])
    words = torch.arange(2, 20).repeat(50)
    extra = torch.rand((900, 5)) + 0.5  # no zeros of its own
    args = (torch.zeros((0, 1), dtype=torch.long), torch.zeros((900,), dtype=torch.long),
            torch.zeros((900,), dtype=torch.long))
    torch.manual_seed(1)
    out = module(words, *args, extra, is_train=True)
    dropped = (out[:, :6] == module.word_embed.weight[torch_modules.UNK_ID]).all(dim=1)
    assert 0.4 < dropped.float().mean() < 0.6
    lookup, other = out[:, [6, 7, 9]], out[:, [8, 10]]
    assert torch.equal(lookup[dropped], torch.zeros_like(lookup[dropped]))
    assert torch.equal(lookup[~dropped], extra[~dropped][:, [0, 1, 3]])
    assert torch.equal(other, extra[:, [2, 4]])
    assert torch.equal(module(words, *args, extra, is_train=False)[:, 6:], extra)
    with pytest.raises(ValueError, match="lookup_extra"):
        featurizer(n_extra=2, lookup_extra=[(1, 3)])


def test_sparse_projection_of_binary_columns_equals_the_dense_one():
    """At prediction, binary extra columns are projected as a sum of weight columns: the same
    output as the dense projection (training keeps the dense one)."""
    n_extra = 9
    dense = featurizer(n_extra=n_extra)
    sparse = featurizer(n_extra=n_extra, binary_extra=[(2, 5), (6, 9)])
    sparse.load_state_dict(dense.state_dict())
    words, chars, index, shapes, _ = featurizer_inputs(n_tokens=7)
    g = torch.Generator().manual_seed(3)
    extra = torch.rand((7, n_extra), generator=g)
    flags = (torch.rand((7, 7), generator=g) < 0.3).float()
    extra[:, 2:5], extra[:, 6:9] = flags[:, :3], flags[:, 3:6]
    extra[4, [2, 3, 4, 6, 7, 8]] = 0.0  # a token without any flag
    with torch.no_grad():
        want = dense(words, chars, index, shapes, extra)
        got = sparse(words, chars, index, shapes, extra)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # training: the dense product, so gradients reach every weight column as before
    out = sparse(words, chars, index, shapes, extra, is_train=True)
    out.sum().backward()
    assert sparse.project.weight.grad is not None
    with pytest.raises(ValueError, match="outside"):
        featurizer(n_extra=2, binary_extra=[(1, 3)])


def test_prediction_projects_each_distinct_string_once():
    """At prediction the inputs that depend on the string alone (word, chars, shape and the
    ``string_extra`` columns) are projected once per distinct string and gathered; contextual
    extra columns per token; binary ones as summed weight columns: the same output as the
    dense product of training (dropout 0), strings longer than the short char window included."""
    from spacy_twitter_ner.models.torch_modules import SHORT_TOKEN_CHARS

    n_extra, n_tokens, n_distinct = 10, 40, 12
    module = featurizer(n_extra=n_extra, binary_extra=[(6, 10)], string_extra=[(0, 3), (6, 10)])
    g = torch.Generator().manual_seed(5)
    lengths = torch.randint(1, SHORT_TOKEN_CHARS + 1, (n_distinct,), generator=g)
    lengths[:3] = SHORT_TOKEN_CHARS + 4  # three strings longer than the short window
    width = SHORT_TOKEN_CHARS + 6
    chars = torch.randint(1, 30, (n_distinct, width), generator=g) * (torch.arange(width)[None, :] < lengths[:, None])
    index = torch.cat([torch.arange(n_distinct), torch.randint(0, n_distinct, (n_tokens - n_distinct,), generator=g)])
    words = torch.randint(0, 20, (n_distinct,), generator=g)[index]  # a string's ids are the same at each token
    shapes = torch.randint(0, 13, (n_distinct,), generator=g)[index]
    per_string = torch.rand((n_distinct, 3), generator=g)
    extra = torch.cat([per_string[index], torch.rand((n_tokens, 3), generator=g),
                       (torch.rand((n_tokens, 4), generator=g) < 0.3).float()], dim=1)
    with torch.no_grad():
        dense = module(words, chars, index, shapes, extra, is_train=True)  # dropout 0: no noise
        predicted = module(words, chars, index, shapes, extra, is_train=False)
    torch.testing.assert_close(predicted, dense, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="string_extra"):
        featurizer(n_extra=2, string_extra=[(1, 3)])


def test_char_cnn_by_length_equals_the_full_window():
    """Prediction convolves short strings on a short window: bit for bit the full window's."""
    from spacy_twitter_ner.models.torch_modules import SHORT_TOKEN_CHARS

    module = featurizer()
    g = torch.Generator().manual_seed(1)
    width = SHORT_TOKEN_CHARS + 9
    lengths = torch.randint(1, width + 1, (200,), generator=g)
    chars = torch.randint(1, 30, (200, width), generator=g) * (torch.arange(width)[None, :] < lengths[:, None])
    with torch.no_grad():
        assert torch.equal(module._char_cnn_by_length(chars), module._char_cnn(chars))


# -- int8 prediction (quantize=True) -----------------------------------------------------------------


def quantized_pair(depth=1, n_in=24, hidden=16):
    """A quantize=True BiLSTM and a float one with the same weights."""
    torch.manual_seed(3)
    q = BiLSTM(n_in, hidden, depth, 0.0, quantize=True)
    f = BiLSTM(n_in, hidden, depth, 0.0)
    f.load_state_dict(q.state_dict())
    return q, f


@pytest.mark.parametrize("depth", [1, 2])
def test_quantized_prediction_is_int8_and_close_to_float(depth):
    q, f = quantized_pair(depth=depth)
    lengths = [5, 0, 9, 2]
    tokens = tokens_for(lengths, n_in=24)
    with torch.no_grad():
        got, want = q(tokens, lengths), f(tokens, lengths)
    assert q._int8, "prediction did not build the int8 copy"
    assert all(type(layer) is not torch.nn.LSTM for layer in q._int8[0])  # a quantized LSTM ran
    assert not torch.equal(got, want)  # int8 is an approximation...
    torch.testing.assert_close(got, want, rtol=0, atol=0.05)  # ...a close one
    # training (and the gradients) stay float32: exactly the float module's output
    torch.testing.assert_close(q(tokens, lengths, is_train=True), f(tokens, lengths, is_train=True), rtol=0, atol=0)


def test_quantized_copy_follows_weight_changes():
    """A training forward or a load_state_dict (thinc's averaged parameters) drops the int8 copy,
    so the next prediction uses the new weights."""
    q, f = quantized_pair()
    lengths = [6, 3]
    tokens = tokens_for(lengths, n_in=24)
    with torch.no_grad():
        before = q(tokens, lengths)
        for p in f.parameters():
            p.add_(0.5)
        q.load_state_dict(f.state_dict())
        assert not q._int8
        after = q(tokens, lengths)
        torch.testing.assert_close(after, f(tokens, lengths), rtol=0, atol=0.05)
        assert (after - before).abs().max() > 0.1
        q(tokens, lengths, is_train=True)
        assert not q._int8


def test_quantized_module_pickles_without_its_copy_and_is_thread_safe():
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    q, _ = quantized_pair()
    lengths = [7, 4, 1]
    tokens = tokens_for(lengths, n_in=24)
    with torch.no_grad():
        want = q(tokens, lengths)
    clone = pickle.loads(pickle.dumps(q))
    assert not clone._int8
    fresh = pickle.loads(pickle.dumps(q))
    with torch.no_grad(), ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: fresh(tokens, lengths), range(16)))
    for out in outs + [clone(tokens, lengths).detach()]:
        torch.testing.assert_close(out, want, rtol=0, atol=0)
