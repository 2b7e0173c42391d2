"""The book's LeNet (d2l 0.17.6, section 6.6 "Convolutional Neural Networks (LeNet)"), as the chapter runs it.

Run with the d2l library installed (d2l==0.17.6, see ../d2l-library-race.md), from a working directory whose
``../data`` holds Fashion-MNIST (``setup.sh`` prepares one):  python lenet.py [EPOCHS]   (default 10, the book's).
The network, batch size, learning rate and the calls are the book's; only the epoch count comes from argv.
"""

import sys

import torch
from torch import nn
from d2l import torch as d2l

net = nn.Sequential(
    nn.Conv2d(1, 6, kernel_size=5, padding=2),
    nn.Sigmoid(),
    nn.AvgPool2d(kernel_size=2, stride=2),
    nn.Conv2d(6, 16, kernel_size=5),
    nn.Sigmoid(),
    nn.AvgPool2d(kernel_size=2, stride=2),
    nn.Flatten(),
    nn.Linear(16 * 5 * 5, 120),
    nn.Sigmoid(),
    nn.Linear(120, 84),
    nn.Sigmoid(),
    nn.Linear(84, 10),
)

batch_size = 256
train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size=batch_size)

lr, num_epochs = 0.9, int(sys.argv[1]) if len(sys.argv) > 1 else 10
d2l.train_ch6(net, train_iter, test_iter, num_epochs, lr, d2l.try_gpu())
