"""The book's BatchNorm LeNet, concise version (d2l 0.17.6, section 7.5 "Batch Normalization", the one on
nn.BatchNorm2d/nn.BatchNorm1d; section 8.5 in the book's current edition), as the chapter runs it.

Run with the d2l library installed (d2l==0.17.6, see ../d2l-library-race.md), from a working directory whose
``../data`` holds Fashion-MNIST (``setup.sh`` prepares one):  python lenet_bn.py [EPOCHS]   (default 10, the book's).
The network, batch size, learning rate and the calls are the book's; only the epoch count comes from argv.
"""

import sys

import torch
from torch import nn
from d2l import torch as d2l

net = nn.Sequential(
    nn.Conv2d(1, 6, kernel_size=5),
    nn.BatchNorm2d(6),
    nn.Sigmoid(),
    nn.AvgPool2d(kernel_size=2, stride=2),
    nn.Conv2d(6, 16, kernel_size=5),
    nn.BatchNorm2d(16),
    nn.Sigmoid(),
    nn.AvgPool2d(kernel_size=2, stride=2),
    nn.Flatten(),
    nn.Linear(256, 120),
    nn.BatchNorm1d(120),
    nn.Sigmoid(),
    nn.Linear(120, 84),
    nn.BatchNorm1d(84),
    nn.Sigmoid(),
    nn.Linear(84, 10),
)

lr, num_epochs, batch_size = 1.0, int(sys.argv[1]) if len(sys.argv) > 1 else 10, 256
train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size)
d2l.train_ch6(net, train_iter, test_iter, num_epochs, lr, d2l.try_gpu())
