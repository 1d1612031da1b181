"""The accuracy search on a model whose output a quantized layer may leave unchanged."""

from npuc import zoo
from npuc.compiler import driver


def test_search_on_an_encoder_keeps_the_model_output_names():
    # BERT's last_hidden_state is fed straight from the float cache when a candidate
    # layer does not reach it; the search must still judge it under its own name
    proto = zoo.build("bert-tiny")
    samples = [zoo.sample_inputs(proto, batch=1, seed=i) for i in range(8)]
    result = driver.compile(proto, "warboy", calibration=samples, accuracy="auto")
    assert result.files
