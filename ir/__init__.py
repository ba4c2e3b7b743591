"""snc.ir: the spike-event graph IR (nodes, graph, .snir artifacts)."""
from . import affine
from .ann import BatchNorm, HostMaxPool2d, MaxPool2d, ReLU, ScaleShift
from .artifact import FORMAT_VERSION, load, save
from .fixed_point import NeuronFixed, SynapseFixed
from .graph import Graph, synapse_count
from .io import Input, Readout
from .kinds import KINDS
from .atrlif import ATRLIF
from .cuba import CubaLIF
from .models import NeuronModel
from .neurons import IF, LIF
from . import sequence
from .node import ANN, CODER, COMPUTE, HOST, INPUT, LINEAR, NEURON, READOUT, Node, Shape
from .synapses import Add, AvgPool2d, Concat, Conv2d, Delay, Dense, Flatten, Reshape, Scale, SumPool2d, Transpose

__all__ = [
    "affine", "Graph", "Node", "Shape", "KINDS", "save", "load", "FORMAT_VERSION",
    "Input", "Readout", "IF", "LIF", "CubaLIF", "ATRLIF", "NeuronModel",
    "Dense", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten", "Reshape", "Transpose", "Concat", "Add", "Scale", "Delay",
    "ReLU", "MaxPool2d", "HostMaxPool2d", "BatchNorm", "ScaleShift", "NeuronFixed", "SynapseFixed", "synapse_count",
    "sequence", "CODER", "COMPUTE", "INPUT", "NEURON", "READOUT", "LINEAR", "ANN", "HOST",
]
