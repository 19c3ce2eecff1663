"""A tiny, ordinary PyTorch training script: nothing in it knows about ferrotorch.

Prints one loss per optimizer step; exits with the code given as its first argument (if any).
"""

import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim


def make_model():
    return nn.Sequential(
        nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)
    )


def train(name, model, opt, x, y, steps=5):
    for step in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        print(f"{name} step {step} loss {loss.item():.10g}")


def main():
    torch.manual_seed(0)
    x = torch.randn(32, 4)
    y = torch.randint(0, 3, (32,))
    model = make_model()
    train("sgd", model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9), x, y)
    model = make_model()
    train("adam", model, optim.Adam(model.parameters(), lr=1e-2), x, y)
    with torch.no_grad():
        target = torch.randn(32, 3)
        print(f"mse {F.mse_loss(model(x), target).item():.10g}")
    sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)


if __name__ == "__main__":
    main()
