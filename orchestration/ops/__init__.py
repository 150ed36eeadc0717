"""Operations: the benchmark, compose rendering, the doctor, the embedded default, Flower and metrics."""
