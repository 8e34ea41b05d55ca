import numpy as np

from envs.codenames.words import compute_embeddings, embeddings, wordlist


def test_wordlist_is_the_400_codenames_words():
    words = wordlist()
    assert len(words) == 400 == len(set(words))
    assert "ICE CREAM" in words and all(w == w.upper() for w in words)


def test_shipped_embeddings_match_minilm():
    sample = (0, 57, 123, 399)
    fresh = compute_embeddings(tuple(wordlist()[i] for i in sample))
    shipped = embeddings()[list(sample)]
    assert shipped.shape == (4, 384)
    np.testing.assert_allclose(shipped, fresh, atol=2e-3)  # float16 storage


def test_shipped_clue_vocabulary_matches_its_sources():
    from envs.codenames.tiers import build_clue_vocabulary, clue_vocabulary

    words, zipf, vectors = clue_vocabulary()
    assert len(words) == 3000 == len(set(words)) and not set(words) & set(wordlist())
    rebuilt = build_clue_vocabulary(50)  # wordfreq + lemminflect give the same list
    assert [w.upper() for w, _ in rebuilt] == list(words[:50])
    sample = (0, 1234, 2999)
    fresh = compute_embeddings(tuple(words[i] for i in sample))
    np.testing.assert_allclose(vectors[list(sample)], fresh, atol=2e-3)
