"""`python -m ferrotorch`: a short offline tour that shows the engine agrees with the math."""

import time

import ferrotorch as torch


def main():
    torch.manual_seed(123)
    print("ferrotorch", torch.__version__)
    x = torch.rand(2, 3)
    print("torch.manual_seed(123); torch.rand(2, 3) =")
    print(x)
    a = torch.randn(512, 512)
    b = torch.randn(512, 512)
    start = time.perf_counter()
    for _ in range(10):
        c = a @ b
    dt = (time.perf_counter() - start) / 10
    print(f"512x512 matmul: {2 * 512**3 / dt / 1e9:.1f} GFLOP/s")
    check = (a.double() @ b.double() - c.double()).abs().max().item()
    print(f"max |float32 - float64| = {check:.2e}")
    logits = torch.randn(4, 10)
    p = logits.softmax(dim=-1)
    print("softmax rows sum to", p.sum(dim=-1))


if __name__ == "__main__":
    main()
